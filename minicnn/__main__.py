"""`python -m minicnn COMMAND ...`: the command line of minicnn.cli (installed as `minicnn`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
