"""Binary chest X-ray screening with the paper's CNN: grayscale in, one sigmoid unit out.

    python examples/train_xray.py                            # synthetic 2-class stand-in
    python examples/train_xray.py --data path/to/chest_xray  # train|val|test/NORMAL|PNEUMONIA
    python examples/train_xray.py --data pneumoniamnist_64.npz  # MedMNIST's PneumoniaMNIST
    python examples/train_xray.py --download pneumoniamnist  # fetch it, then train

The network is models.paper with in_channels=1 and output="sigmoid": with two classes the
last Dense has a single unit and P(class 1) = sigmoid(logit); the loss is binary
cross-entropy on the logit. Class 1 (the second name in sorted order: PNEUMONIA, or
"pneumonia" in PneumoniaMNIST) is the positive class.

Chest X-ray sets are imbalanced (about three pneumonia images per normal one). With
--balance pos_weight (the default) the positive term of the loss is weighted by
n_negative / n_positive from the training split, so both classes weigh the same in total;
--balance none trains on the raw loss. Results: sensitivity (pneumonia found), specificity
(normal cleared), precision, F1 and ROC AUC on the test split, plus the files train_paper.py
writes (model.npz, checkpoint.npz, history.csv, curves.png, confusion.*, results.json).
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--data", help="chest X-ray folder / .zip, or a PneumoniaMNIST .npz (default: synthetic)")
    add("--download", choices=["pneumoniamnist"], help="fetch PneumoniaMNIST first")
    add("--preset", default="paper", choices=["paper", "paper13"])
    add("--epochs", type=int, help="passes over the training set (paper: 20; synthetic: 8)")
    add("--batch-size", type=int, default=32, help="mini-batch size (paper: 32)")
    add("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
    add("--dropout", type=float, default=0.2, help="fraction dropped before flatten (paper: 0.2)")
    add("--image-size", type=int, default=64, help="images are resized to S x S (paper: 64)")
    add("--balance", default="pos_weight", choices=["pos_weight", "none"], help="imbalance")
    add("--threshold", type=float, default=0.5, help="predict class 1 when P(class 1) >= this")
    add("--augment", action="store_true", help="random small rotations, shifts, brightness")
    add("--seed", type=int, default=0)
    add("--out", help="output folder (default runs/xray-<data set>)")
    add("--resume", action="store_true", help="continue from --out/checkpoint.npz")
    add("--workers", type=int, help="image decoding processes (default: all cores)")
    add("--no-cache", action="store_true", help="do not cache decoded images on disk")
    add("--no-progress", action="store_true", help="no progress bars")
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
        epochs = args.epochs or 8
        print(
            "No --data given: training on a SYNTHETIC grayscale 2-class stand-in, made "
            "imbalanced like chest X-rays (3 positives per negative).\n"
            "It shows that the code learns; it says nothing about X-rays. For real data: "
            "--data path/to/chest_xray or --download pneumoniamnist.\n"
        )
        ds = minicnn.data.synthetic(2, 400, args.image_size, seed=args.seed, channels=1)
        ds.class_names = ["negative", "positive"]
        rng = np.random.default_rng(args.seed)  # keep one negative in three in every split
        for split in ("train", "val", "test"):
            s = getattr(ds, split)
            keep = (s.labels == 1) | (rng.random(len(s)) < 1 / 3)
            setattr(ds, split, s.subset(keep))
    else:
        name = os.path.basename(os.path.normpath(str(args.data))).split(".")[0]
        epochs = args.epochs or 20
        ds = minicnn.data.load(
            args.data,
            image_size=args.image_size,
            channels=1,
            seed=args.seed,
            cache=not args.no_cache,
            workers=args.workers,
            progress=not args.no_progress,
        )
    if args.data is None:  # load() prints its own notes as it goes
        for note in ds.notes:
            print("data:", note)
    if ds.num_classes != 2:
        raise SystemExit(
            f"error: {args.data} has {ds.num_classes} classes; X-ray screening needs 2"
        )
    val = ds.val if ds.val is not None and len(ds.val) else None
    test, test_name = (ds.test, "test") if ds.test is not None and len(ds.test) else (val, "val")
    mean, std = minicnn.data.channel_stats(ds.train)
    counts = np.bincount(ds.train.labels, minlength=2)
    print(f"data: train {counts[0]} {ds.class_names[0]} / {counts[1]} {ds.class_names[1]}; "
          f"{len(val) if val else 0} val, {len(test)} {test_name} images")  # fmt: skip

    out = args.out or os.path.join("runs", f"xray-{name}")
    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, "checkpoint.npz")

    # ------------------------------------------------------------------ model
    build = {"paper": minicnn.models.paper, "paper13": minicnn.models.paper13}[args.preset]
    model = build(
        num_classes=2,
        in_channels=1,  # grayscale
        output="sigmoid",  # one logit: P(class 1) = sigmoid(logit)
        image_size=args.image_size,
        dropout=args.dropout,
        seed=args.seed,
    )
    model.class_names, model.mean, model.std = ds.class_names, mean, std

    # ------------------------------------------------------------------ loss: the imbalance
    if args.balance == "pos_weight":
        pos_weight = float(counts[0] / max(counts[1], 1))  # n_negative / n_positive
        how = (
            f"positive term of the loss weighted by n_{ds.class_names[0]} / "
            f"n_{ds.class_names[1]} = {counts[0]} / {counts[1]} = {pos_weight:.3f}"
        )
    else:
        pos_weight, how = None, "not handled (--balance none): raw binary cross-entropy"
    print(f"class imbalance: {how}")
    loss_fn = minicnn.BinaryCrossEntropy(pos_weight=pos_weight)
    optimizer = minicnn.Adam(model.parameters(), lr=args.lr)
    augment = None  # no flips for X-rays: the heart is on the left
    if args.augment:
        augment = minicnn.data.Augment(rotate=5, shift=0.05, brightness=0.1, contrast=0.1)

    # ------------------------------------------------------------------ training loop
    settings = vars(args) | {"epochs": epochs, "data_name": name, "pos_weight": pos_weight}
    print(f"\ntraining {args.preset} (sigmoid head) for {epochs} epochs; writing to {out}")
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
            epochs=epochs,
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
    if val is None:
        minicnn.save(model, os.path.join(out, "model.npz"), metadata=settings)

    # ------------------------------------------------------------------ results
    best = minicnn.load(os.path.join(out, "model.npz"))
    result = minicnn.evaluate(best, test, loss_fn)
    scores = result["probs"][:, 1]  # P(class 1)
    b = binary_metrics(result["labels"], scores, threshold=args.threshold)
    predicted = (scores >= args.threshold).astype(np.int64)
    print(f"\n{test_name} set: {len(test)} images, model of epoch {best.metadata.get('epoch')}, "
          f"positive = {ds.class_names[1]}, threshold {args.threshold}")  # fmt: skip
    for key, meaning in (
        ("sensitivity", f"share of {ds.class_names[1]} images found"),
        ("specificity", f"share of {ds.class_names[0]} images cleared"),
        ("precision", f"share of {ds.class_names[1]} calls that are right"),
        ("f1", "harmonic mean of precision and sensitivity"),
        ("auc", "ROC AUC, threshold-free"),
        ("accuracy", ""),
    ):
        print(f"  {key:<12} {b[key]:.3f}  {meaning}")
    print(f"  tp {b['tp']}  fn {b['fn']}  fp {b['fp']}  tn {b['tn']}")

    cm = confusion_matrix(result["labels"], predicted, 2)
    write_history_csv(os.path.join(out, "history.csv"), history)
    plot_curves(history, os.path.join(out, "curves.png"), title=f"{args.preset} on {name}")
    write_confusion_csv(os.path.join(out, "confusion.csv"), cm, ds.class_names)
    plot_confusion(cm, ds.class_names, os.path.join(out, "confusion.png"))
    results = {
        "metrics": {"split": test_name, "images": len(test), "loss": result["loss"], **b},
        "imbalance": {"train_counts": counts.tolist(), "handling": how},
        "best_epoch": best.metadata.get("epoch"),
        "epochs_run": len(history),
        "train_seconds": round(train_seconds, 1),
        "history": history,
        "settings": settings,
        "data": {"class_names": ds.class_names, "notes": ds.notes},
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"\nwrote {', '.join(sorted(os.listdir(out)))} to {out}")
