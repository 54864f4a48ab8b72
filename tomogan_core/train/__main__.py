"""``python -m tomogan_core.train``: the training command (:func:`tomogan_core.train.cli.main`)."""

import sys

from tomogan_core.train.cli import main

sys.exit(main())
