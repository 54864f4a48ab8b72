"""The public release's training command, kept for its users: ``python train.py -ld LOW.h5 -nd NORMAL.h5``.

Same as the installed ``tomogan-train``; ``python train.py -h`` lists the flags.
"""

import sys

from tomogan_core.train import main

if __name__ == "__main__":
    sys.exit(main())
