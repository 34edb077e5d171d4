"""What every command line of minicnn shares: an expected error is one line, not a traceback.

The errors a command expects are a model or checkpoint file it cannot use (ModelFileError),
a shape that does not fit (ShapeError), data it cannot use (DataError), an OSError while
reading or writing, a training that diverged, and CommandError (a refusal such as an --out
folder in use). Each is printed as `error: <what happened, naming the file>` on stderr and
the exit code is 1. Any other exception is a bug and keeps its traceback. `--debug`, or the
environment variable MINICNN_DEBUG=1, shows the traceback of the expected ones too.

    python -m minicnn ...:   sys.exit(run(main, argv))
    examples/*.py:           errors_as_one_line()  # first line under __main__; a flat script
"""

import os
import sys

from .data import DataError
from .data.sources import printable
from .distributed import DistributedError
from .io import ModelFileError
from .layers import ShapeError
from .train import TrainingDiverged

DEBUG_ENV = "MINICNN_DEBUG"


class CommandError(Exception):
    """An expected failure of a command that no other error type says (the message does)."""


EXPECTED = (
    ModelFileError,
    ShapeError,
    DataError,
    OSError,
    TrainingDiverged,
    CommandError,
    DistributedError,
)


def debug_wanted(argv=None):
    """True when --debug is among the arguments or MINICNN_DEBUG is set (and not 0)."""
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "0") not in ("", "0")


def add_debug_option(parser):
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show tracebacks of expected errors too (or {DEBUG_ENV}=1)",
    )


def describe(e):
    """The text after `error: ` for an expected error: its message, the file named."""
    if isinstance(e, OSError) and e.strerror:
        name = e.filename if e.filename is not None else e.filename2
        return e.strerror if name is None else f"{printable(name)}: {e.strerror}"
    return str(e) or type(e).__name__


def report(e):
    print(f"error: {describe(e)}", file=sys.stderr)


def run(main, argv=None):
    """Call main(argv) and return its exit code; an expected error is one line and code 1."""
    try:
        return main(argv)
    except EXPECTED as e:
        if debug_wanted(argv):
            raise
        report(e)
        return 1


def errors_as_one_line(argv=None):
    """For a flat script: from now on an uncaught expected error prints one line, exit code 1.

    Installs a sys.excepthook; other exceptions (and all with --debug) keep their traceback.
    """
    default = sys.excepthook
    debug = debug_wanted(argv)

    def hook(kind, e, tb):
        if isinstance(e, EXPECTED) and not debug:
            report(e)
        else:
            default(kind, e, tb)

    sys.excepthook = hook


def report_skipped(skipped, total):
    """Name each skipped input on stderr, then one `error:` line; the exit code (0 or 1).

    skipped: [(path, why)]; total: how many inputs there were. 1 when any was skipped or
    there were none, else 0.
    """
    for _, message in skipped:
        print(f"skipped: {message}", file=sys.stderr)
    if skipped:
        done = total - len(skipped)
        print(f"error: {len(skipped)} of {total} images could not be read ({done} done)",
              file=sys.stderr)  # fmt: skip
    elif not total:
        print("error: no images given", file=sys.stderr)
    return 1 if skipped or not total else 0
