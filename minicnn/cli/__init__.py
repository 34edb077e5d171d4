"""The command line: `minicnn COMMAND ...`, also `python -m minicnn COMMAND ...`.

    minicnn train [--screening] [--data DATA] ...   train a CNN, write its results    (train.py)
    minicnn predict MODEL IMAGE [IMAGE ...]         the most probable classes         (predict.py)
    minicnn evaluate MODEL --data DATA              accuracy on a labelled split      (evaluate.py)
    minicnn summary MODEL                           the layer table, what it expects  (summary.py)
    minicnn explain MODEL IMAGE_OR_FOLDER           where the model looks             (explain.py)
    minicnn filters MODEL                           a convolution layer's filters     (explain.py)
    minicnn export MODEL OUT.onnx                   the model as ONNX ([onnx] extra)  (export.py)
    minicnn --version                               minicnn X.Y.Z

Each module in COMMANDS adds its subcommands with add_commands(subparsers), each setting
`run`, a function of the parsed arguments that returns the exit code; its docstring is the
command's reference, shown by `minicnn COMMAND --help`. An expected error (a model file that
cannot be used, a file that cannot be read or written, ...) is one line `error: ...` and exit
code 1 (common.py); --debug, anywhere, shows its traceback. A wrong option is the command's
usage line and the error, exit code 2; an unknown command gets the closest one suggested.
"""

import sys

from .. import __version__
from . import evaluate, explain, export, predict, summary, train
from .common import Parser, add_debug_option, did_you_mean
from .common import run as run_expected

COMMANDS = [train, predict, evaluate, summary, explain, export]  # in --help order


def parser():
    """The parser of `minicnn`: --version, --debug, and a subparser per command."""
    top = Parser(
        prog="minicnn",
        description="minicnn: a CNN engine from scratch in NumPy and Numba. Train a model, "
        "then use it (a .npz written by minicnn.save). `minicnn COMMAND --help` for each.",
    )
    top.add_argument("--version", action="version", version=f"minicnn {__version__}")
    add_debug_option(top)
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_commands(subparsers)
    return top, subparsers.choices  # choices: {command name: its parser}


def _main(argv):
    top, commands = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    argv = [a for a in argv if a != "--debug"]  # --debug: anywhere, see common.run()
    given = next((a for a in argv if not a.startswith("-")), None)  # top options take no value
    if given is not None and given not in commands:
        top.error(f"unknown command {given!r}{did_you_mean(given, commands)}; "
                  f"commands: {', '.join(commands)}")  # fmt: skip
    args, extras = top.parse_known_args(argv)
    if extras:  # said by the command's own parser, with its usage
        (commands[args.command] if args.command else top).unrecognized(extras)
    if args.command is None:
        top.print_help()
        return 2
    return args.run(args)


def main(argv=None):
    """Run `minicnn ARGS`; returns the exit code (expected errors: one line, 1)."""
    return run_expected(_main, argv)
