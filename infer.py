"""The public release's inference command, kept for its users: ``python infer.py -ld LOW.h5 -model MODEL.pt``.

Same as the installed ``tomogan-infer``; ``python infer.py -h`` lists the flags.
"""

import sys

from tomogan_core.infer import main

if __name__ == "__main__":
    sys.exit(main())
