"""Train the paper's CNN ("X-Ray Image Classification using CNN", Confluence 2019) with minicnn.

    python examples/train_paper.py                                  # built-in synthetic stand-in
    python examples/train_paper.py --data path/to/tiny-imagenet-200.zip   # the paper's data
    python examples/train_paper.py --download tiny-imagenet         # fetch it, then train
    python examples/train_paper.py --data path/to/chest_xray        # train|val|test/NORMAL|...
    python examples/train_paper.py --resume                         # continue an interrupted run
    python -m minicnn predict runs/paper-synthetic/model.npz some_image.png

With no --data it trains on minicnn.data.synthetic (coloured shapes and textures, a few
minutes on two cores), which shows that the code learns and says nothing about Tiny ImageNet.
Everything a run produces goes to --out (default runs/paper-<data set>): model.npz (best
epoch by validation accuracy), checkpoint.npz (last epoch, for --resume), history.csv,
curves.png, confusion.csv, confusion.png (up to 20 classes) and results.json.
"""

import argparse
import json
import os
import time

import numpy as np

import minicnn
from minicnn.io import write_confusion_csv, write_history_csv
from minicnn.metrics import binary_metrics, confusion_matrix
from minicnn.plots import plot_confusion, plot_curves
from minicnn.train import SaveBest, TrainingDiverged

if __name__ == "__main__":
    # ------------------------------------------------------------------ settings
    # Defaults are the paper's (sections 3.1 and 3.2); every one can be changed from the
    # command line.
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--data", help="folder, .zip or MedMNIST .npz (default: the synthetic stand-in)")
    add("--download", choices=["tiny-imagenet", "pneumoniamnist"], help="fetch a data set")
    add("--preset", default="paper", choices=["paper", "paper13"], help="which reading")
    add("--epochs", type=int, default=20, help="passes over the training set (paper: 20)")
    add("--batch-size", type=int, default=32, help="mini-batch size (paper: 32)")
    add("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
    add("--dropout", type=float, default=0.2, help="fraction dropped before flatten (paper: 0.2)")
    add("--image-size", type=int, default=64, help="images are resized to S x S (paper: 64)")
    add(
        "--per-class",
        type=int,
        help="training images kept per class (synthetic: made per class, then split 80/10/10; 400)",
    )
    add("--classes", type=int, default=20, help="number of classes of the synthetic set")
    add("--augment", action="store_true", help="random flips, rotations, shifts, brightness")
    add("--output", default="softmax", choices=["softmax", "sigmoid"], help="output layer")
    add("--seed", type=int, default=0, help="seed of weights, shuffling, dropout and splits")
    add("--out", help="output folder (default runs/paper-<data set>)")
    add("--resume", action="store_true", help="continue from --out/checkpoint.npz")
    add("--workers", type=int, help="image decoding processes (default: all cores)")
    add("--no-cache", action="store_true", help="do not cache decoded images on disk")
    add("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    add(
        "--threads",
        type=int,
        help="threads (default: all cores); resume with the same count for identical bits",
    )
    args = parser.parse_args()
    if args.threads:
        minicnn.threads.set_num_threads(args.threads)

    # ------------------------------------------------------------------ data
    if args.download:
        args.data = minicnn.data.download(args.download, "data", size=args.image_size)
    if args.data is None:
        name = "synthetic"
        per_class = args.per_class or 400  # 80% train, 10% val, 10% test
        print(
            "No --data given: training on minicnn's built-in SYNTHETIC stand-in "
            f"({args.classes} classes of coloured shapes, {per_class} images each).\n"
            "It shows that the code learns; it says nothing about the paper's results.\n"
            "For the paper's data: --data path/to/tiny-imagenet-200.zip (or --download "
            "tiny-imagenet); for chest X-rays: --data path/to/chest_xray, or "
            "examples/train_xray.py.\n"
        )
        ds = minicnn.data.synthetic(args.classes, per_class, args.image_size, seed=args.seed)
    else:
        name = os.path.basename(os.path.normpath(str(args.data))).split(".")[0]
        ds = minicnn.data.load(
            args.data,
            image_size=args.image_size,
            seed=args.seed,
            cache=not args.no_cache,
            workers=args.workers,
            progress=not args.no_progress,
        )
        if args.per_class:  # keep at most per_class training images of each class
            rng = np.random.default_rng(args.seed)
            keep = [
                rng.permutation(np.flatnonzero(ds.train.labels == c))[: args.per_class]
                for c in range(ds.num_classes)
            ]
            ds.train = ds.train.subset(np.sort(np.concatenate(keep)))
    if args.data is None:  # load() prints its own notes as it goes
        for note in ds.notes:
            print("data:", note)
    val = ds.val if ds.val is not None and len(ds.val) else None
    test, test_name = (ds.test, "test") if ds.test is not None and len(ds.test) else (val, "val")
    K = ds.num_classes
    mean, std = minicnn.data.channel_stats(ds.train)  # per channel, from the training split
    final = (
        f" / {len(test)} test" if test_name == "test" else " (no test split: final figures on val)"
    )
    print(
        f"data: {len(ds.train)} train / {len(val) if val else 0} val{final} images, "
        f"{K} classes, {ds.image_shape} each"
    )

    out = args.out or os.path.join("runs", f"{args.preset}-{name}")
    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, "checkpoint.npz")
    if os.path.exists(checkpoint) and not args.resume:
        print(f"note: {checkpoint} exists and will be overwritten (use --resume to continue it)")

    # ------------------------------------------------------------------ model
    build = {"paper": minicnn.models.paper, "paper13": minicnn.models.paper13}[args.preset]
    model = build(
        num_classes=K,
        in_channels=ds.image_shape[0],
        output=args.output,
        image_size=args.image_size,
        dropout=args.dropout,
        seed=args.seed,
    )
    model.class_names, model.mean, model.std = ds.class_names, mean, std  # stored by save
    model.summary()

    # ------------------------------------------------------------------ optimizer and loss
    optimizer = minicnn.Adam(model.parameters(), lr=args.lr)  # betas 0.9 / 0.999, eps 1e-8
    if args.output == "sigmoid":
        loss_fn = minicnn.BinaryCrossEntropy()  # one sigmoid unit (2 classes) or one per class
    else:
        loss_fn = minicnn.SoftmaxCrossEntropy()
    augment = (
        minicnn.data.Augment(flip=0.5, rotate=10, shift=0.1, brightness=0.2, contrast=0.2)
        if args.augment
        else None
    )

    # ------------------------------------------------------------------ training loop
    settings = vars(args) | {"data_name": name}
    print(
        f"\ntraining {args.preset} for {args.epochs} epochs, batch {args.batch_size}, "
        f"Adam lr {args.lr:g}, output {args.output}; writing to {out}"
    )
    if not minicnn.kernels_compiled():
        print("(first run: Numba is compiling minicnn's kernels, a few seconds, once)")
    t0 = time.perf_counter()
    try:
        history = minicnn.fit(
            model,
            loss_fn,
            optimizer,
            ds.train,
            val,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            augment=augment,
            checkpoint=checkpoint,
            resume=args.resume,
            progress=not args.no_progress,
            callbacks=[SaveBest(os.path.join(out, "model.npz"), metadata=settings)],
        )
    except TrainingDiverged as e:
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:
        raise SystemExit(f"\ninterrupted; continue with --resume ({checkpoint} is kept)") from None
    train_seconds = time.perf_counter() - t0
    if val is None:  # nothing to pick the best epoch by: keep the last one
        minicnn.save(model, os.path.join(out, "model.npz"), metadata=settings)

    # ------------------------------------------------------------------ results
    best = minicnn.load(os.path.join(out, "model.npz"))  # the best epoch, as a user gets it
    result = minicnn.evaluate(best, test, loss_fn)
    print(
        f"\n{test_name} set ({len(test)} images), model of epoch "
        f"{best.metadata.get('epoch', len(history))}:"
    )
    print(f"  accuracy {result['accuracy']:.1%}   (chance {1 / K:.1%})")
    metrics = {
        "split": test_name,
        "images": len(test),
        "loss": result["loss"],
        "accuracy": result["accuracy"],
    }
    if "top5" in result:
        print(f"  top-5 accuracy {result['top5']:.1%}")
        metrics["top5"] = result["top5"]
    if K == 2:  # screening numbers, class 1 (e.g. pneumonia) is the positive class
        b = binary_metrics(result["labels"], result["probs"][:, 1])
        names = ("sensitivity", "specificity", "precision", "f1", "auc")
        print("  " + "  ".join(f"{k} {b[k]:.3f}" for k in names))
        metrics.update(b)

    cm = confusion_matrix(result["labels"], result["predictions"], K)
    write_history_csv(os.path.join(out, "history.csv"), history)
    plot_curves(history, os.path.join(out, "curves.png"), title=f"{args.preset} on {name}")
    write_confusion_csv(os.path.join(out, "confusion.csv"), cm, ds.class_names)
    if K <= 20:
        plot_confusion(cm, ds.class_names, os.path.join(out, "confusion.png"))
    results = {
        "metrics": metrics,
        "best_epoch": best.metadata.get("epoch"),
        "epochs_run": len(history),
        "train_seconds": round(train_seconds, 1),
        "history": history,
        "settings": settings,
        "data": {
            "classes": K,
            "notes": ds.notes,
            "train": len(ds.train),
            "val": len(val) if val else 0,
            "test": len(test),
        },
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"\nwrote {', '.join(sorted(os.listdir(out)))} to {out}")
    print(f"predict: python -m minicnn predict {os.path.join(out, 'model.npz')} IMAGE [IMAGE ...]")
