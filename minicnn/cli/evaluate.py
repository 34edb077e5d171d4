"""minicnn evaluate: the accuracy of a model on one split (or all) of a labelled data set.

    minicnn evaluate runs/paper-tiny/model.npz --data tiny-imagenet-200.zip
    minicnn evaluate runs/paper-tiny/model.npz --data tiny-imagenet-200.zip --split val --tta flip
    minicnn evaluate runs/xray-pneumoniamnist/model.npz --data pneumoniamnist.npz
    minicnn evaluate runs/xray/model.npz --data chest_xray/ --json test.json
    minicnn evaluate runs/xray/model.npz --data other_hospital/ --split all
    minicnn evaluate run1/model.npz --ensemble run2/model.npz --data D --threshold-from val

The data is loaded as training loads it (minicnn.data.load at the model's input size and
channels), and only the split scored is decoded (and cached). --split picks it (default:
test when the data has one, else val). A folder or zip holding only test/<class>/ (the
official chest X-ray test set, say) is that test split. A split the source lacks is carved
as training carved it: with the --split-seed (its --seed unless given) and --group-by of
the training run, read from the model file when it stores them (said in one line: --seed N,
this command's name for the carve's seed), else 0 and auto; give them to override.
Class folders with no split folders (--data chest_xray/test, holding NORMAL/ and PNEUMONIA/)
are thus cut 80/10/10 and only the carved test tenth is scored (a note says so): right for
the data the model trained on, not for a separate test set. --split all scores every image
of the source, nothing carved (split folders all together, named in the output); it cannot
go with --threshold-from val, since any val split would be among the images scored.

The data's classes must be the model's. Names that differ only in case (NORMAL and normal),
or come in another order, are matched by name, in one line; other classes are refused, both
lists named.

Printed: accuracy, and top-5 accuracy for over 5 classes. A two-class model is judged at the
threshold stored in its file (the line before the figures says which and where it comes
from): accuracy, sensitivity, specificity and ROC AUC at it, each with its 95% percentile
bootstrap interval over the images scored (--bootstrap N resamples, 2000; 0: none; seeded
by --seed). --tta flip adds the same figures for the mean over each image and its mirror.

--ensemble MODEL (repeated) scores MODEL and those models as one: the mean of their
probabilities (for each view with --tta). Its two-class threshold is --threshold T, or with
--threshold-from val the highest whose sensitivity on the validation split is at least
--target-sensitivity (0.95), chosen for each view; without either, 0.5. --threshold and
--threshold-from val work for one model too, in place of the stored threshold.

--json FILE writes it all to FILE: models (file, epoch), data (source, split (test, val,
train or all), images, classes, class_names, seed, group_by (null for all)) and views, one
per view (tta: null, then flip), each with accuracy (and top5). Two classes: each view has
a `screening` section made by the code that makes a training run's results.json's, with its
keys: among them threshold, threshold_source (val, fallback or fixed as there; model_file or
default), val (the validation figures at a threshold chosen there), figures (sensitivity,
specificity, ppv, npv, accuracy, f1, auc: value, low, high), at_0.5, calibration (brier,
ece, reliability); and threshold_how, the words printed after the threshold.
"""

import contextlib
import io
import os

import numpy as np

from ..data import Split, load
from ..data.sources import printable
from ..metrics import choose_threshold
from ..saving import write_json
from ..train import evaluate as evaluate_split
from ..training.evaluate import num_classes_of
from . import ensemble
from .common import (
    CommandError,
    add_command,
    add_tta_option,
    quoted,
    split_seed,
    threshold_of,
)
from .screening import RESAMPLES, screening_section

SHOWN = 10  # class names listed in a refusal, per list


def add_commands(commands):
    """Register `evaluate` on the subparsers of `minicnn`."""
    e = add_command(
        commands, "evaluate", __doc__, help="accuracy of a model on a labelled data set"
    )
    e.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    e.add_argument("--data", required=True, help="folder, .zip or MedMNIST .npz, as in training")
    e.add_argument(
        "--split",
        choices=["train", "val", "test", "all"],
        help="(default: test, else val); all: every image of the source, nothing carved",
    )
    e.add_argument(
        "--seed",
        type=int,
        help="seed of carved splits and of the bootstrap (default: the training's --split-seed, "
        "which is its --seed unless given; else 0)",
    )
    e.add_argument(
        "--group-by",
        metavar="RULE",
        help="carved splits keep groups together as in training: auto, none, or a regular "
        "expression with one group (default: the training's, else auto)",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.add_argument("--json", metavar="FILE", help="also write every figure to FILE (JSON)")
    e.add_argument(
        "--bootstrap",
        type=int,
        default=RESAMPLES,
        metavar="N",
        help=f"two classes: bootstrap resamples for the 95%% intervals ({RESAMPLES}; 0: none)",
    )
    add_tta_option(e)
    ensemble.add_options(e, choose=True)
    e.set_defaults(run=evaluate)


def carving(args, meta):
    """(seed, group_by) of carved splits: as given, else the training run's (its --split-seed,
    which is its --seed unless given), else 0 and auto.

    meta: the model file's metadata (the training settings). Says in one line what it took
    from there.
    """
    seed, group_by, taken = args.seed, args.group_by, []
    stored_seed, stored_rule = split_seed(meta), meta.get("group_by")
    if seed is None:
        seed = 0 if stored_seed is None else stored_seed
        taken += [] if stored_seed is None else [f"--seed {seed}"]
    if group_by is None:
        group_by = stored_rule if isinstance(stored_rule, str) else "auto"
        taken += [f"--group-by {group_by}"] if isinstance(stored_rule, str) else []
    if taken and args.split != "all":  # nothing is carved from an `all` split
        print(f"carved splits as in training: {' '.join(taken)} (from the model file)")
    return seed, group_by


def load_scored(args, image_size, channels, seed, group_by):
    """(name, Split, Dataset): the split scored, the only one decoded; CommandError if it is
    empty. A split carved from a source with no split folders is said in a note."""
    options = dict(image_size=image_size, channels=channels, seed=seed, group_by=group_by,
                   progress=not args.no_progress)  # fmt: skip
    if args.split:
        name, ds = args.split, load(args.data, splits=args.split, **options)
    else:  # test when the source has one (listing is cheap, decoding is not), else val
        said = io.StringIO()  # the loader's notes, kept for when test is the split scored
        with contextlib.redirect_stdout(said):
            name, ds = "test", load(args.data, splits="test", **options)
        if ds.test is None or not len(ds.test):
            name, ds = "val", load(args.data, splits="val", **options)
        else:
            print(said.getvalue(), end="")
    split = getattr(ds, name)
    if split is None or not len(split):
        raise CommandError(f"{printable(args.data)} has no {name} split")
    if name != "all" and "all" in ds.listed:  # carved, perhaps from a test set given whole
        n, total = len(split), ds.listed["all"]
        print(f"note: {printable(args.data)} has no split folders: scoring the {name} split "
              f"carved from it as training carves ({n / total:.0%} of its images, {n} of "
              f"{total}); --split all scores every image")  # fmt: skip
    return name, split, ds


def match_classes(model, class_names, data):
    """The model's class index of each of the data's classes (int64 (K,)), or None if equal.

    Names that differ only in case or order are matched by name (said in one line); other
    classes raise CommandError naming both lists (or, when long, what differs).
    """
    ours = None if model.class_names is None else [str(n) for n in model.class_names]
    K = num_classes_of(model)
    if ours is None or ours == class_names:
        if len(class_names) != K:
            raise CommandError(f"{printable(data)} has {len(class_names)} classes, the model {K}")
        return None
    lower = [n.lower() for n in ours]
    theirs = [n.lower() for n in class_names]
    if sorted(lower) == sorted(theirs) and len(set(lower)) == len(lower):
        index = np.array([lower.index(n) for n in theirs], dtype=np.int64)
        how = []
        if any(a != ours[i] for a, i in zip(class_names, index)):
            how.append("differ only in case")
        if (index != np.arange(len(index))).any():
            how.append("come in another order")
        theirs_shown, ours_shown = (
            quoted(class_names, SHOWN),
            quoted([ours[i] for i in index], SHOWN),
        )
        print(f"classes: the data's {theirs_shown} are the model's {ours_shown} "
              f"(the names {' and '.join(how)})")  # fmt: skip
        return index
    if max(len(ours), len(class_names)) <= SHOWN:
        raise CommandError(
            f"the classes of {printable(data)} are not the model's: the data has "
            f"{quoted(class_names)}, the model {quoted(ours)}"
        )
    only_data = [n for n in class_names if n.lower() not in lower]
    only_model = [n for n in ours if n.lower() not in theirs]
    raise CommandError(
        f"the classes of {printable(data)} ({len(class_names)}) are not the model's "
        f"({len(ours)}): only in the data: {quoted(only_data, SHOWN) or 'none'}; only in the "
        f"model: {quoted(only_model, SHOWN) or 'none'}"
    )


def check_options(args):
    """--json, --bootstrap and --split all with --threshold-from val, refused before any work:
    one CommandError naming the option."""
    if args.split == "all" and args.threshold_from == "val":
        raise CommandError("--threshold-from val cannot go with --split all: any val split "
                           "would be among the images scored; give --threshold T or another "
                           "--split")  # fmt: skip
    if args.bootstrap < 0:
        raise CommandError(f"--bootstrap must be 0 (no intervals) or more, got {args.bootstrap}")
    if args.json is None:
        return
    folder = os.path.dirname(os.path.abspath(args.json))
    if os.path.isdir(args.json):
        raise CommandError(f"--json {printable(args.json)} is a folder: give a file name")
    if not os.path.isdir(folder):
        raise CommandError(f"--json {printable(args.json)}: no folder {printable(folder)}")


def evaluate(args):
    """Print the model's figures on the split (--json: write them); 0 (a data set that does
    not fit: an error)."""
    check_options(args)
    models, scorer = ensemble.load(args)  # one model, or --ensemble: their mean
    model = models[0]
    C, S, _ = model.input_shape
    meta = getattr(model, "metadata", {}) or {}
    seed, group_by = carving(args, meta)
    if args.split != "all":  # nothing carved: the members' split seeds do not matter
        ensemble.seeds_note(models)
    name, split, ds = load_scored(args, S, C, seed, group_by)
    class_names = ds.class_names
    index = match_classes(model, class_names, args.data)
    if index is not None:  # the data's labels as the model's class indices
        split = Split(split.images, index[split.labels])
    names = class_names if model.class_names is None else [str(n) for n in model.class_names]
    epoch = meta.get("epoch")
    if len(models) == 1:
        print(f"model: {args.model}" + (f" (saved at epoch {epoch})" if epoch else ""))
    else:
        print(f"model: an ensemble of {len(models)}, {args.model} first")
    parts = " + ".join(r for r in ds.listed if r != "all") or "no split folders"
    which = f"every image ({parts})" if name == "all" else f"{name} split"
    print(f"data: {printable(args.data)}, {which}, {len(split)} images, "
          f"{len(class_names)} classes")  # fmt: skip
    files = [args.model, *args.ensemble]
    rule = None if name == "all" else group_by  # nothing carved
    data = dict(source=printable(args.data), split=name, images=len(split),
                classes=len(names), class_names=names, seed=seed, group_by=rule)  # fmt: skip
    if index is not None:
        data["data_class_names"] = class_names  # as the data names them
    epochs = [(getattr(m, "metadata", None) or {}).get("epoch") for m in models]
    report = {
        "models": [{"file": printable(f), "epoch": e} for f, e in zip(files, epochs)],
        "data": data,
        "views": [],
    }
    two = len(class_names) == 2
    views = [None] + ([args.tta] if args.tta else [])
    if two:
        chosen = thresholds(args, models, scorer, views, (S, C, seed, group_by, index), name)
        differ = len({(c["threshold"], how) for c, _, how in chosen.values()}) > 1
        for tta, (choice, _, how) in chosen.items():
            if tta is None or differ:
                view = "" if tta is None else f" with --tta {tta}"
                print(f"decision{view}: {names[1]} when P({names[1]}) >= "
                      f"{choice['threshold']:.4g} ({how})")  # fmt: skip
        if args.bootstrap:
            print(f"95% intervals: {args.bootstrap:,} bootstrap resamples of the {len(split)} "
                  f"images (seed {seed})")  # fmt: skip
    for tta in views:
        result = score(scorer, split, tta)
        view = {"tta": tta}
        if two:
            choice, source, how = chosen[tta]
            labels, p1 = result["labels"], result["probs"][:, 1]
            section = screening_section(names, choice, name, labels, p1, args.bootstrap, seed,
                                        source)  # fmt: skip
            section["threshold_how"] = how
            view |= {"accuracy": section["figures"]["accuracy"]["value"], "screening": section}
            line = two_class_line(section["figures"])
        else:
            view["accuracy"] = result["accuracy"]
            line = f"accuracy {result['accuracy']:.2%}"
            if "top5" in result:
                view["top5"] = result["top5"]
                line += f"   top-5 {result['top5']:.2%}"
        report["views"].append(view)
        print(f"  {'one view' if tta is None else '--tta ' + tta + ':':<12} {line}")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {printable(args.json)}")
    return 0


def two_class_line(figures):
    """Accuracy, sensitivity, specificity and ROC AUC, each with its interval when there is
    one: `sensitivity 0.950 (0.912-0.981)`. figures: the `figures` of screening_section."""

    def with_interval(key, form):
        f = figures[key]
        if f["low"] is None:
            return format(f["value"], form)
        return f"{f['value']:{form}} ({f['low']:{form}}-{f['high']:{form}})"

    shown = (("accuracy", "accuracy", ".2%"), ("sensitivity", "sensitivity", ".3f"),
             ("specificity", "specificity", ".3f"), ("ROC AUC", "auc", ".3f"))  # fmt: skip
    return "   ".join(f"{label} {with_interval(key, form)}" for label, key, form in shown)


def score(scorer, split, tta):
    """evaluate() of one model, or Ensemble.evaluate: probs (N, K), labels, accuracy, ..."""
    if len(getattr(scorer, "models", [scorer])) > 1:
        return scorer.evaluate(split, tta=tta)
    return evaluate_split(scorer, split, tta=tta)


def thresholds(args, models, scorer, views, loading, scored):
    """{view: (choice, source, how)}: the two-class threshold of each view.

    choice: metrics.choose_threshold's dict (threshold, rule, target_sensitivity, note, val);
    source: screening_section's threshold_source (None: from the rule); how: a few words for
    output. --threshold T for all; --threshold-from val: chosen on the validation split for
    each view (its probabilities under that view); else the model file's (stored_choice),
    or 0.5 for an ensemble. loading: (image size, channels, seed, group_by, class index) to
    load the validation split as the scored one was; scored: the name of the scored split.
    """
    if args.threshold is not None:
        choice = choose_threshold(None, None, args.target_sensitivity, args.threshold)
        return {tta: (choice, None, "given with --threshold") for tta in views}
    if args.threshold_from != "val":
        if len(models) > 1:
            how = f"{ensemble.ENSEMBLE_DEFAULT} (--threshold-from val chooses one)"
            return {tta: (default_choice(), "default", how) for tta in views}
        return {tta: stored_choice(models[0]) for tta in views}
    S, C, seed, group_by, index = loading
    val = load(args.data, splits="val", image_size=S, channels=C, seed=seed, group_by=group_by,
               progress=not args.no_progress).val  # fmt: skip
    if val is None or not len(val):
        raise CommandError(f"--threshold-from val: {printable(args.data)} has no val split")
    if index is not None:
        val = Split(val.images, index[val.labels])
    if scored == "val":
        print("note: the threshold is chosen on the split it is measured on: the figures "
              "below are optimistic")  # fmt: skip
    chosen = {}
    for tta in views:
        p1 = score(scorer, val, tta)["probs"][:, 1]
        c = choose_threshold(val.labels, p1, args.target_sensitivity)
        if c["rule"] == "fallback":
            chosen[tta] = (c, None, f"validation could not choose: {c['note']}")
        else:
            v = c["val"]
            how = (f"chosen on the val split, {len(val)} images, for sensitivity "
                   f"{args.target_sensitivity:g}: there sensitivity {v['sensitivity']:.3f}, "
                   f"specificity {v['specificity']:.3f}")  # fmt: skip
            chosen[tta] = (c, None, how)
    return chosen


def default_choice(t=0.5):
    """A choice (as metrics.choose_threshold's) of a threshold nothing chose: rule "default"."""
    return {"threshold": t, "rule": "default", "target_sensitivity": None, "note": None,
            "val": None}  # fmt: skip


def stored_choice(model):
    """(choice, source, how) of the threshold stored in a model file (threshold_of), with the
    rule, target and note training stored beside it; source "model_file" ("default" when the
    file stores none)."""
    t, how = threshold_of(model)
    if model.threshold is None:
        return default_choice(t), "default", how
    meta = getattr(model, "metadata", None) or {}
    stored = meta.get("screening") or {}
    rule = stored.get("rule")
    target = meta.get("target_sensitivity") if rule == "target_sensitivity" else None
    choice = {"threshold": t, "rule": rule, "target_sensitivity": target,
              "note": stored.get("note"), "val": None}  # fmt: skip
    return choice, "model_file", how
