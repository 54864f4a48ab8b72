"""``python -m analysis.crossval``: :func:`analysis.crossval.cli.main`."""

from analysis.crossval.cli import main

main()
