"""Binary chest X-ray screening with the paper's CNN: grayscale in, one sigmoid unit out.

    python examples/train_xray.py                            # synthetic 2-class stand-in
    python examples/train_xray.py --data path/to/chest_xray  # train|val|test/NORMAL|PNEUMONIA
    python examples/train_xray.py --data pneumoniamnist_64.npz  # MedMNIST's PneumoniaMNIST
    python examples/train_xray.py --download pneumoniamnist  # fetch it, then train
    python examples/train_xray.py --data pneumoniamnist.npz --init MODEL.npz  # fine-tune

The same as `minicnn train --screening` (minicnn/cli/train.py). The network is models.paper
with in_channels=1 and output="sigmoid": with two classes the last Dense has a single unit
and P(class 1) = sigmoid(logit) (minicnn/heads.py); the loss is binary cross-entropy on the
logit. Class 1 (the second name in sorted order: PNEUMONIA, or "pneumonia" in
PneumoniaMNIST) is the positive class.

Chest X-ray sets are imbalanced (about three pneumonia images per normal one). With
--balance pos_weight (the default) the positive term of the loss is weighted by
n_negative / n_positive from the training split, so both classes weigh the same in total;
--balance none trains on the raw loss. The decision threshold is chosen on the validation
split: the highest one whose sensitivity there is at least 0.95 (--target-sensitivity,
or --threshold to fix it). Results on the test split at that threshold, each with a 95%
bootstrap interval: sensitivity (pneumonia found), specificity (normal cleared), PPV, NPV,
accuracy, F1 and ROC AUC; roc.png; plus the files train_paper.py writes (model.npz, which
keeps the threshold, checkpoint.npz, history.csv, curves.png, confusion.*, results.json).
--init MODEL.npz fine-tunes a trained model (e.g. a Tiny ImageNet one): the new head alone
first, then every layer (minicnn/cli/transfer.py).
"""

from minicnn.cli import options, train
from minicnn.cli.results import write_results
from minicnn.cli.run_data import Splits
from minicnn.cli.run_folder import RunFolder
from minicnn.cli.transfer import Init

if __name__ == "__main__":
    # ------------------------------------------------------------------ settings
    parser = train.parser(__doc__, screening=True)  # minicnn train --screening's (--balance, ...)
    args = train.parse(parser)  # the preset fills what the command line leaves out; printed
    run = RunFolder(train.out_folder(args), args.resume)  # runs/xray-<data set>, locked
    init = Init(args, channels=1)  # --init MODEL.npz: fine-tune it (its channels)

    # ------------------------------------------------------------------ data
    ds = train.dataset(args, init.channels)  # two classes: --data, or an imbalanced stand-in
    data = Splits(ds, synthetic=args.data is None)  # train, val, test

    # ------------------------------------------------------------------ model
    model = train.new_model(args, ds, init)  # models.paper(in_channels=1, output="sigmoid")

    # ------------------------------------------------------------------ loss: the imbalance
    loss_fn, pos_weight, imbalance = train.screening_loss(args, ds)  # --balance pos_weight
    optimizer = options.optimizer(model, args)  # the preset's: Adam, or AdamW for paper_bn
    schedule = options.schedule(optimizer, args, len(data.train), model)  # --init: 2 stages
    augment = options.augmentation(args, train.SCREENING_AUGMENT)  # no flips: heart on the left

    # ------------------------------------------------------------------ fit
    settings = vars(args) | {"pos_weight": pos_weight}  # kept in model.npz and results.json
    history, seconds = train.fit(
        model, loss_fn, optimizer, data, args, run, settings, augment, schedule
    )

    # ------------------------------------------------------------------ results
    write_results(run, history, seconds, loss_fn, data, settings, extra={"imbalance": imbalance})
