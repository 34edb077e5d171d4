"""Where a chest X-ray model trained on the Kermany train folder loses on PneumoniaMNIST's test.

    python docs/results/chest-xray/shift.py runs/e20-base-s0/model.npz \
        --folder chest_xray_train_128.zip --npz pneumoniamnist.npz

Scores the model, at the threshold stored in its file, on:
1. the test split carved by patient from the folder (as training carved it, --seed), as is;
2. the same images sent through PneumoniaMNIST's resolution: resized to 28x28, then to the
   model's input size, as minicnn.data reads a 28x28 file;
3. the same again after keeping only the central columns of each image (--crops), which
   is how a square centre crop of a wide radiograph looks once the folder's images have
   been squeezed to a square;
4. PneumoniaMNIST's test split (the Kermany test patients).
Then prints the pixel statistics of both sources per class (28x28, gray): mean, the mean
within-image standard deviation and 5th and 95th percentiles.
"""

import argparse

import numpy as np
from PIL import Image

import minicnn
from minicnn.metrics import roc_auc, screening_metrics

LOW = 28  # PneumoniaMNIST's side


def resized(images, side):
    """uint8 (N, 1, S, S) -> (N, 1, side, side), bilinear as minicnn.data resizes."""
    out = [np.asarray(Image.fromarray(im[0]).resize((side, side), Image.Resampling.BILINEAR))
           for im in images]  # fmt: skip
    return np.stack(out)[:, None]


def central_columns(images, keep):
    """Keep the central `keep` share of each image's columns: (N, 1, S, S) -> (N, 1, S, w)."""
    S = images.shape[-1]
    w = int(round(S * keep))
    a = (S - w) // 2
    return images[..., a : a + w]


def row(name, model, x, y):
    p = model.predict_proba(x)[:, 1]
    m = screening_metrics(y, p, model.threshold)
    print(f"| {name} | {len(y)} | {roc_auc(y, p):.3f} | {m['sensitivity']:.3f} | "
          f"{m['specificity']:.3f} |")  # fmt: skip


def statistics(name, data, split):
    x = split.images.reshape(len(split.images), -1).astype(np.float64)
    for c, cls in enumerate(data.class_names):
        xc = x[split.labels == c]
        p5, p95 = np.percentile(xc, [5, 95], axis=1).mean(axis=1)
        print(f"| {name} | {cls} | {len(xc)} | {xc.mean():.1f} | {xc.std(axis=1).mean():.1f} | "
              f"{p5:.1f} | {p95:.1f} |")  # fmt: skip


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--folder", required=True, help="the Kermany train folder or .zip")
    p.add_argument("--npz", required=True, help="pneumoniamnist.npz")
    p.add_argument(
        "--seed", type=int, default=0, help="the carve's seed (the training's --split-seed)"
    )
    p.add_argument("--crops", default="0.85,0.75", help="shares of central columns kept")
    args = p.parse_args()
    model = minicnn.load(args.model)
    C, S, _ = model.input_shape
    opts = dict(channels=C, seed=args.seed, splits="test", progress=False)
    full = minicnn.data.load(args.folder, image_size=S, **opts).test
    big = minicnn.data.load(args.folder, image_size=128, **opts).test
    npz = minicnn.data.load(args.npz, image_size=S, channels=C, splits="test", progress=False)
    print(f"model {args.model}: threshold {model.threshold:.4f}\n")
    print("| scored on | images | ROC AUC | sensitivity | specificity |")
    print("| --- | --- | --- | --- | --- |")
    row("carved test (patients of the train folder), as is", model, full.images, full.labels)
    row(f"the same, through {LOW}x{LOW}", model, resized(resized(big.images, LOW), S), big.labels)
    for keep in (float(k) for k in args.crops.split(",")):
        x = resized(resized(central_columns(big.images, keep), LOW), S)
        row(f"the same, central {keep:.0%} of columns, through {LOW}x{LOW}", model, x, big.labels)
    row("PneumoniaMNIST test (the Kermany test patients)", model, npz.test.images, npz.test.labels)
    print("\n| source (28x28) | class | images | mean | std in image | 5th pct | 95th pct |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    low = minicnn.data.load(args.folder, image_size=LOW, channels=1, seed=args.seed,
                            progress=False)  # fmt: skip
    statistics("train folder, train split", low, low.train)
    mnist = minicnn.data.load(args.npz, image_size=LOW, channels=1, progress=False)
    statistics("PneumoniaMNIST train", mnist, mnist.train)
    statistics("PneumoniaMNIST test", mnist, mnist.test)


if __name__ == "__main__":
    main()
