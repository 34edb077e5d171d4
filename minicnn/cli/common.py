"""What every command line of minicnn shares: errors, the argument parser, models and images.

Errors. The errors a command expects are a model or checkpoint file it cannot use
(ModelFileError), a shape that does not fit (ShapeError), data it cannot use (DataError), an
OSError while reading or writing, a training that diverged, and CommandError (a refusal such
as an --out folder in use). Each is printed as `error: <what happened, naming the file>` on
stderr and the exit code is 1. Any other exception is a bug and keeps its traceback. `--debug`,
or the environment variable MINICNN_DEBUG=1, shows the traceback of the expected ones too.

    python -m minicnn ...:   sys.exit(run(main, argv))
    examples/*.py:           errors_as_one_line()  # first line under __main__; a flat script

Options. `Parser` is argparse's parser with a short answer to a wrong option: the command's
usage in one line and the error, exit code 2 (`--help` lists every option):

    usage: minicnn predict [options] MODEL IMAGE [IMAGE ...]
    minicnn predict: error: unrecognized arguments: --topk 3 (did you mean --top-k?)
"""

import argparse
import difflib
import os
import re
import sys

from ..data import DataError
from ..data.augment import TTA
from ..data.sources import printable
from ..distributed import DistributedError
from ..io import ModelFileError, load
from ..layers import ShapeError
from ..train import TrainingDiverged

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


# ----------------------------------------------------------------------------- errors


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


# ----------------------------------------------------------------------------- options


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are the short usage line and the error (code 2)."""

    def short_usage(self):
        """`usage: PROG [options] POSITIONALS`: one line, however many options there are."""
        words = [self.prog]
        if any(a.option_strings for a in self._actions):
            words.append("[options]")
        words += [_shown(a) for a in self._actions if not a.option_strings]
        return "usage: " + " ".join(words)

    def format_help(self):
        self.usage = self.usage or self.short_usage().removeprefix("usage: ")  # options follow
        return super().format_help()

    def error(self, message):
        self.exit(2, f"{self.short_usage()}\n{self.prog}: error: {message}\n")

    def unrecognized(self, extras):
        """Refuse arguments this parser does not take, suggesting the closest option."""
        options = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        message = f"unrecognized arguments: {' '.join(extras)}"
        hints = [did_you_mean(e.split("=")[0], options) for e in extras if e.startswith("--")]
        self.error(message + next((h for h in hints if h), ""))

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.unrecognized(extras)
        return namespace


def add_command(commands, name, doc, help):
    """A subcommand's parser; its --help shows `doc` (its module's docstring) as written."""
    formatter = argparse.RawDescriptionHelpFormatter  # keeps the docstring's lines and examples
    return commands.add_parser(name, help=help, description=doc, formatter_class=formatter)


def _shown(action):
    """A positional argument as usage shows it: MODEL, IMAGE [IMAGE ...], COMMAND ..."""
    name = action.metavar or action.dest
    return {
        None: name,
        "?": f"[{name}]",
        "*": f"[{name} ...]",
        "+": f"{name} [{name} ...]",
        argparse.PARSER: f"{name} ...",
    }.get(action.nargs, name)


def did_you_mean(given, choices):
    """' (did you mean X?)' for the closest of choices to given, or ''."""
    close = difflib.get_close_matches(given, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# ----------------------------------------------------------------------------- class names


def quoted(names, limit=None):
    """Class names as an unambiguous list: 'a, b', 'c' (a name may hold commas).

    limit: show at most this many, then ', ... (N in all)'.
    """
    names = list(names)
    shown = names if limit is None else names[:limit]
    text = ", ".join(repr(str(n)) for n in shown)
    return text + (f", ... ({len(names)} in all)" if len(shown) < len(names) else "")


def synonyms(name):
    """The comma-separated names of one class, lower case: 'tabby, tabby cat' -> both."""
    return [part.strip().lower() for part in str(name).split(",") if part.strip()]


def class_index(text, names):
    """The index of the class `text` names: its index, its name or one of its synonyms.

    Case does not matter. CommandError when no class or several are called so, with the
    closest name (difflib over names and synonyms) as a "did you mean".
    """
    names = [str(n) for n in names or []]
    if text.lstrip("-").isdigit():
        return int(text)
    given = text.strip().lower()
    hits = [i for i, n in enumerate(names) if given in (n.lower(), *synonyms(n))]
    if len(hits) == 1:
        return hits[0]
    how = f"give a class index (0..{len(names) - 1}) or a name" if names else "give an index"
    if hits:
        raise CommandError(f"several classes are called {text!r}: {quoted(names[i] for i in hits)}"
                           f"; {how}")  # fmt: skip
    raise CommandError(f"no class is called {text!r}{closest_class(text, names)}; {how}")


def closest_class(given, names):
    """' (did you mean 'X'?)' with the class names closest to given, or ''.

    Compared in lower case, to each comma-separated synonym of each name (what class_index
    accepts): synonyms that hold `given` as a whole word come first ('cat' -> 'tabby cat',
    'Egyptian cat', ...; three at most), else the closest spelling by difflib ('gokart' ->
    'go-kart', 'Tabbycat' -> 'tabby cat').
    """
    spelled = {}  # lower-case spelling -> what to suggest
    for name in names:
        for part in [p.strip() for p in str(name).split(",") if p.strip()]:
            spelled.setdefault(part.lower(), part)
    word = given.strip().lower()
    close = [s for s in spelled if word and word in re.split(r"[^\w]+", s)]
    close = close or difflib.get_close_matches(word, list(spelled), n=1)
    if not close:
        return ""
    shown = [repr(spelled[s]) for s in close[:3]]
    if len(close) > 3:
        alternatives = ", ".join(shown) + ", ..."
    else:
        alternatives = " or ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)
    return f" (did you mean {alternatives}?)"


def threshold_of(model, detail=True):
    """(t, source): a two-class model's decision threshold and where it comes from.

    t: model.threshold, or 0.5 when the file stores none. source: a few words for output,
    e.g. "chosen on validation for sensitivity 0.95" ("chosen on validation" without
    detail), "given with --threshold", "used by default: the model stores none"; each
    reads after "the threshold 0.5".
    """
    if model.threshold is None:
        return 0.5, "used by default: the model stores none"
    meta = getattr(model, "metadata", None) or {}
    rule = (meta.get("screening") or {}).get("rule")
    target = meta.get("target_sensitivity")
    if rule == "target_sensitivity":
        known = detail and isinstance(target, (int, float))
        return model.threshold, "chosen on validation" + (
            f" for sensitivity {target:g}" if known else ""
        )
    if rule == "fixed":
        return model.threshold, "given with --threshold"
    if rule == "fallback":
        return model.threshold, "taken as the fallback: validation could not choose one"
    return model.threshold, "stored in the model file"


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def add_tta_option(parser):
    parser.add_argument(
        "--tta", choices=TTA, help="flip: average each image with its mirror (photos, not X-rays)"
    )


# ----------------------------------------------------------------------------- inputs


def split_seed(meta):
    """The seed that carved a model's splits, from its file's metadata (training settings):
    split_seed, else seed (files written before --split-seed), else None."""
    for key in ("split_seed", "seed"):
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def load_model(path):
    """minicnn.load(path): a model file, checked as it is read (ModelFileError names it)."""
    return load(path)


def image_paths(items):
    """Files as given, folders expanded to the image files inside them (recursive, sorted).

    Folders are walked as the training loader walks them (links followed, never in a loop);
    what the walk leaves out is said on stderr.
    """
    from ..data.images import is_image_name  # the extensions the training loader reads
    from ..data.sources import walk

    paths = []
    for item in items:
        if not os.path.isdir(item):
            paths.append(item)
            continue
        left_out = []
        found = [
            os.path.join(item, *rel_dir.split("/")[:-1], name)
            for rel_dir, _, names in walk(item, left_out)
            for name in names
            if is_image_name(name)
        ]
        for why in left_out:
            print(f"warning: {why}", file=sys.stderr)
        if not found:
            print(f"warning: no image files in folder {printable(item)}", file=sys.stderr)
        paths += sorted(found)
    return paths
