"""Transfer learning and freezing: minicnn.transfer, Parameter.trainable, Sequential.freeze.

Frozen parameters never change and their gradients are never computed, on either engine;
the trainable ones get exactly the gradients they get without freezing; the fast engine
equals the reference with layers frozen; in_channels=1 folds the first convolution.
"""

import numpy as np
import pytest

import minicnn
from minicnn.fast import conv as fast_conv
from minicnn.fast import winograd
from minicnn.gradcheck import rel_error
from minicnn.transfer import fold_to_gray, transfer

MEAN = np.array([0.5, 0.4, 0.3], np.float32)
STD = np.array([0.2, 0.25, 0.3], np.float32)


def source(preset="paper", dtype=np.float32, seed=1):
    """A small trained-looking model: non-zero biases, BatchNorm statistics, a normalisation."""
    build = {"paper": minicnn.models.paper, "paper_bn": minicnn.models.paper_bn}[preset]
    model = build(num_classes=5, image_size=32 if preset == "paper" else 16, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for p in layer.parameters():
            if p.data.ndim == 1:
                p.data[:] += rng.standard_normal(p.shape).astype(np.float32) * 0.1
        if isinstance(layer, minicnn.BatchNorm2D):
            layer.running_mean[:] = rng.standard_normal(layer.num_features) * 0.3
            layer.running_var[:] = rng.uniform(0.5, 2.0, layer.num_features)
    model.mean, model.std = MEAN, STD
    model.class_names = [f"c{i}" for i in range(5)]
    return model.astype(dtype)


def test_transfer_keeps_the_layers_and_replaces_the_head():
    src = source()
    before = [p.data.copy() for p in src.parameters()]
    model = transfer(src, 2, output="sigmoid")
    assert len(model) == len(src) and model.input_shape == src.input_shape
    assert [type(a) for a in model.layers] == [type(b) for b in src.layers]
    assert repr(model[-1]) == "Dense(128 -> 1)" and model.output == "sigmoid"
    assert model.class_names is None
    np.testing.assert_array_equal(model.mean, MEAN)
    for a, b in zip(model.parameters()[:-2], src.parameters()[:-2]):  # copies, same values
        assert a is not b and a.data is not b.data
        np.testing.assert_array_equal(a.data, b.data)
    # frozen: every kept layer; the head is trainable
    assert [p.trainable for p in model.parameters()] == [False] * 12 + [True, True]
    assert model.frozen() == [0, 3, 6, 9, 12, 17]
    # the source is left as it was, trainable
    for p, b in zip(src.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
        assert p.trainable
    assert repr(transfer(src, 7)[-1]) == "Dense(128 -> 7)"  # softmax: one unit per class
    assert all(p.trainable for p in transfer(src, 3, freeze=False).parameters())


def test_transfer_from_a_file_and_a_seeded_head(tmp_path):
    src = source("paper_bn")
    minicnn.save(src, tmp_path / "src.npz")
    a = transfer(str(tmp_path / "src.npz"), 3, seed=4)
    b = transfer(src, 3, seed=4)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    np.testing.assert_array_equal(a[1].running_var, src[1].running_var)  # buffers copied
    assert not np.array_equal(transfer(src, 3, seed=5)[-1].W.data, b[-1].W.data)


def test_transfer_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="in_channels=2: a 3-channel source"):
        transfer(source(), 2, in_channels=2)
    no_dense = minicnn.Sequential([minicnn.Conv2D(3, 2, 3)], input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="no Dense layer"):
        transfer(no_dense, 2)


def gray_and_replica(n, size, seed=0):
    g = np.random.default_rng(seed).integers(0, 256, (n, 1, size, size), dtype=np.uint8)
    return g, np.repeat(g, 3, axis=1)


def normalised(images, mean, std):
    """(u - mean) / std in float64, u = pixel / 255 (preprocess does it in float32)."""
    shape = (1, -1, 1, 1)
    return (images / 255 - np.reshape(mean, shape).astype(np.float64)) / np.reshape(
        std, shape
    ).astype(np.float64)


def test_gray_fold_equals_the_rgb_replica_away_from_the_padding():
    src = source(dtype=np.float64)
    model = transfer(src, 2, output="sigmoid", in_channels=1)
    assert model.input_shape == (1, 32, 32) and repr(model[0]) == "Conv2D(1->16, 3x3)"
    assert (model.mean.tolist(), model.std.tolist()) == (pytest.approx([0.4]), [0.25])
    gray, rgb = gray_and_replica(3, 32)
    a = src[0].forward(normalised(rgb, MEAN, STD))  # the source's conv on the replicas
    b = model[0].forward(normalised(gray, model.mean, model.std))
    inside = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    assert rel_error(a[inside], b[inside]) <= 1e-12
    assert np.abs(a - b).max() > 1e-3  # on the border the zero padding differs, as documented
    assert model[0].W.shape == (16, 1, 3, 3) and not model[0].W.trainable
    # the rest of the network is the source's
    for p, q in zip(model.parameters()[2:-2], src.parameters()[2:-2]):
        np.testing.assert_array_equal(p.data, q.data)


def test_gray_fold_without_normalisation_is_exact_everywhere():
    src = source(dtype=np.float64)
    src.mean = src.std = None  # x = pixel / 255: zero padding is zero in both
    model = transfer(src, 2, in_channels=1)
    assert model.mean is None
    gray, rgb = gray_and_replica(2, 32)
    assert rel_error(src[0].forward(rgb / 255.0), model[0].forward(gray / 255.0)) <= 1e-12


def test_gray_fold_of_a_bias_free_conv_moves_its_bias_into_batchnorm():
    src = source("paper_bn", dtype=np.float64)
    model = transfer(src, 2, in_channels=1)
    assert model[0].b is None  # still fused by the fast engine with the BatchNorm
    W1, b1, _, _ = fold_to_gray(src[0], MEAN, STD)
    np.testing.assert_allclose(model[1].running_mean, src[1].running_mean - b1)
    gray, rgb = gray_and_replica(4, 16, seed=3)
    ya = src[0].forward(normalised(rgb, MEAN, STD))
    yb = model[0].forward(normalised(gray, model.mean, model.std))
    inside = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    # the convolution lacks b1 (a batch's mean absorbs it in training) ...
    assert rel_error(ya[inside] - b1[None, :, None, None], yb[inside]) <= 1e-12
    # ... and in evaluation the BatchNorm's running mean takes it: the same response
    a, b = src[1].forward(ya), model[1].forward(yb)
    assert rel_error(a[inside], b[inside]) <= 1e-12


# ----------------------------------------------------------------------------- freezing


def test_freeze_and_unfreeze_act_on_the_layers_before_upto():
    model = source()
    model.freeze()  # all but the head, the last Dense (#19)
    assert model.head_index() == 19 and model.frozen() == [0, 3, 6, 9, 12, 17]
    model.unfreeze(upto=9)
    assert model.frozen() == [9, 12, 17]
    model.freeze(upto=4)
    assert model.frozen() == [0, 3, 9, 12, 17]
    model.unfreeze()
    assert model.frozen() == [] and all(p.trainable for p in model.parameters())
    model.freeze(upto=len(model))
    assert model.frozen() == [0, 3, 6, 9, 12, 17, 19]
    assert "trainable=False" in repr(model[0].W)


def one_step(model, x, dout, fast, training=True, input_grad=False):
    model.fast = fast
    model.forward(x, training=training)
    return model.backward(dout, input_grad=input_grad)


@pytest.mark.parametrize("upto", [4, 9, None], ids=["upto4", "upto9", "backbone"])
@pytest.mark.parametrize("preset", ["paper", "paper_bn"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_frozen_gradients_are_skipped_and_the_rest_equal_the_unfrozen_ones(preset, upto, training):
    """float64, both engines: frozen .grad untouched (a NaN sentinel survives), every other
    gradient equal to the one of the same model unfrozen on the reference engine (in
    training, with the frozen BatchNorms frozen there too: they use running statistics)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, *source(preset).input_shape))
    dout = rng.standard_normal((4, 5))
    full = source(preset, np.float64)
    below = upto if upto is not None else full.head_index()
    for layer in full.layers[:below]:
        if isinstance(layer, minicnn.BatchNorm2D):
            for p in layer.parameters():
                p.trainable = False
    one_step(full, x, dout, fast=False, training=training)
    for fast in (True, False):
        model = source(preset, np.float64).freeze(upto=upto)
        frozen = [p for p in model.parameters() if not p.trainable]
        assert frozen
        for p in frozen:
            p.grad = np.full_like(p.data, np.nan)
        one_step(model, x, dout, fast, training)
        for p, q in zip(model.parameters(), full.parameters()):
            if p.trainable:
                assert rel_error(p.grad, q.grad) <= 1e-12
            else:
                assert np.isnan(p.grad).all()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_a_frozen_batchnorm_uses_and_keeps_its_running_statistics(fast):
    """Frozen (as Keras): training normalises with the running statistics, which stay; the
    frozen backbone is one fixed function. Unfrozen: the batch's, and they move."""
    rng = np.random.default_rng(6)
    model = source("paper_bn", np.float64)
    model.fast = fast
    for layer in model.layers:
        if isinstance(layer, minicnn.BatchNorm2D):  # running statistics that are not 0 and 1
            layer.running_mean[:] = rng.standard_normal(layer.num_features) * 0.1
            layer.running_var[:] = rng.uniform(0.5, 2.0, layer.num_features)
        if isinstance(layer, minicnn.Dropout):
            layer.rate = 0.0  # training and evaluation then differ only by BatchNorm
    x = rng.standard_normal((4, *model.input_shape))
    bns = [layer for layer in model.layers if isinstance(layer, minicnn.BatchNorm2D)]
    before = [(bn.running_mean.copy(), bn.running_var.copy()) for bn in bns]
    model.freeze()
    evaluation = model.forward(x, training=False)
    np.testing.assert_allclose(model.forward(x, training=True), evaluation, rtol=1e-12)
    for bn, (mean, var) in zip(bns, before):
        np.testing.assert_array_equal(bn.running_mean, mean)
        np.testing.assert_array_equal(bn.running_var, var)
    model.unfreeze()
    assert rel_error(model.forward(x, training=True), evaluation) > 1e-3  # batch statistics
    assert not np.array_equal(bns[0].running_mean, before[0][0])  # and they moved


def test_frozen_statistics_train_gamma_and_beta_on_the_running_statistics():
    """freeze_statistics: training is the evaluation function (running statistics, left as
    they are), gamma and beta get its gradient (float64, checked by central differences),
    and the fast engine gives the reference's gradients."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 16, 16))
    y = rng.integers(0, 5, 4)
    variances = rng.uniform(0.5, 2.0, (8, 256))  # each BatchNorm's, the same for both engines
    grads = []
    for fast in (False, True):
        model = source("paper_bn", np.float64)
        model.fast = fast
        bns = [layer for layer in model.layers if isinstance(layer, minicnn.BatchNorm2D)]
        for layer in model.layers:
            if isinstance(layer, minicnn.Dropout):
                layer.rate = 0.0
        for bn, var in zip(bns, variances, strict=True):
            bn.running_var[:] = var[: bn.num_features]
            assert bn.freeze_statistics() is bn and bn.statistics_frozen
        before = [bn.running_mean.copy() for bn in bns]
        loss_fn = minicnn.SoftmaxCrossEntropy()
        out = model.forward(x, training=True)
        np.testing.assert_allclose(out, model.forward(x, training=False), rtol=1e-12)
        assert all(np.array_equal(bn.running_mean, b) for bn, b in zip(bns, before))
        loss_fn.forward(model.forward(x, training=True), y)
        model.backward(loss_fn.backward())
        grads.append([p.grad.copy() for bn in bns for p in bn.parameters()])
        if not fast:  # the gradient of the evaluation function, at three values of gamma
            gamma = bns[2].gamma.data
            for j in range(3):
                loss = []
                for h in (1e-6, -1e-6):
                    gamma[j] += h
                    loss.append(loss_fn.forward(model.forward(x, training=True), y))
                    gamma[j] -= h
                numeric = (loss[0] - loss[1]) / 2e-6
                assert rel_error(bns[2].gamma.grad[j], numeric) <= 1e-6
    assert max(rel_error(a, b) for a, b in zip(*grads)) <= 1e-10


def test_fast_equals_reference_with_frozen_layers_over_training_steps():
    """Three SGD steps of paper_bn with its first stages frozen: same loss and weights.

    (SGD: Adam divides by sqrt(v) and so magnifies the engines' rounding differences to
    about 1e-11 after three steps, frozen or not.)"""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 3, 16, 16))
    y = rng.integers(0, 5, (3, 6))
    runs = []
    for fast in (True, False):
        model = source("paper_bn", np.float64).freeze(upto=11)
        model.fast = fast
        frozen = {id(p): p.data.copy() for p in model.parameters() if not p.trainable}
        optimizer = minicnn.SGD(model.parameters(), lr=1e-2, momentum=0.9)
        loss_fn, losses = minicnn.SoftmaxCrossEntropy(), []
        for step in range(3):
            losses.append(loss_fn.forward(model.forward(x[step], training=True), y[step]))
            model.backward(loss_fn.backward())
            optimizer.step()
        for p in model.parameters():  # frozen: not moved
            if id(p) in frozen:
                np.testing.assert_array_equal(p.data, frozen[id(p)])
        runs.append((losses, [p.data.copy() for p in model.parameters()]))
    (loss_f, w_f), (loss_r, w_r) = runs
    np.testing.assert_allclose(loss_f, loss_r, rtol=1e-12)
    assert max(rel_error(a, b) for a, b in zip(w_f, w_r)) <= 1e-12
    start = source("paper_bn", np.float64).parameters()
    moved = [rel_error(a, b.data) > 1e-6 for a, b in zip(w_f, start)]
    assert moved == [p.trainable for p in model.parameters()]  # exactly the trainable ones


@pytest.mark.parametrize("make", [
    lambda ps: minicnn.SGD(ps, lr=0.1),
    lambda ps: minicnn.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: minicnn.Adam(ps, lr=0.1, weight_decay=0.1),
    lambda ps: minicnn.AdamW(ps, lr=0.1),
], ids=["sgd", "momentum", "adam", "adamw"])  # fmt: skip
def test_optimizers_skip_frozen_parameters(make):
    a, b = minicnn.Parameter(np.ones(3)), minicnn.Parameter(np.ones(3))
    a.trainable = False
    optimizer = make([a, b])
    for p in (a, b):
        p.grad = np.full(3, 0.5)
    optimizer.step()
    np.testing.assert_array_equal(a.data, np.ones(3))
    assert (b.data < 1).all()
    a.trainable = True  # unfrozen: it moves from the next step on
    optimizer.step()
    assert (a.data < 1).all()


def test_backward_visits_no_layer_below_the_lowest_trainable(monkeypatch):
    """Reference engine: the frozen layers below are never called; fast engine: a frozen
    conv that must pass a gradient down builds no im2col columns (or Winograd transform of
    its input) in backward."""
    model = source().freeze(upto=6)  # conv #0 and #3 frozen, conv #6 on trainable
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    dout = np.ones((2, 5), np.float32)
    called = []
    for i in range(6):
        monkeypatch.setattr(model[i], "backward", lambda *a, i=i, **k: called.append(i))
    one_step(model, x, dout, fast=False)
    assert called == []
    model = source().freeze(upto=6)
    columns = []

    def counting(original):
        def count(self, *args):
            columns.append(self.conv)
            return original(self, *args)

        return count

    monkeypatch.setattr(fast_conv.ChunkedConv, "_im2col", counting(fast_conv.ChunkedConv._im2col))
    monkeypatch.setattr(  # the input's transform: Winograd's columns
        winograd.WinogradConv,
        "_transform_input",
        counting(winograd.WinogradConv._transform_input),
    )
    model.fast = True
    model.forward(x, training=True)
    forward_columns, columns[:] = list(columns), []
    model.backward(dout)
    assert model[0] in forward_columns and model[0] not in columns  # never visited
    model.unfreeze()
    for p in model[3].parameters():  # conv #3 frozen, above the trainable conv #0
        p.trainable = False
    model.forward(x, training=True)
    columns.clear()
    model.backward(dout)
    assert model[3] not in columns and model[0] in columns and model[6] in columns


def test_everything_frozen_backward_does_nothing():
    model = source().freeze(upto=20)
    model.forward(np.zeros((2, 3, 32, 32), np.float32), training=True)
    assert model.backward(np.ones((2, 5), np.float32)) is None
    with pytest.raises(ValueError, match="no layer with parameters"):
        minicnn.Sequential([minicnn.ReLU()]).freeze()


# ----------------------------------------------------------------------------- files, fit


def test_model_file_records_the_frozen_parameters_and_the_threshold(tmp_path):
    import json

    model = transfer(source(), 2, output="sigmoid")
    model.threshold = 0.125
    minicnn.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        record = json.loads(str(f["minicnn.json"]))
    assert record["frozen"][:3] == ["layers.0.W", "layers.0.b", "layers.3.W"]
    assert len(record["frozen"]) == 12 and record["threshold"] == 0.125
    back = minicnn.load(tmp_path / "m.npz")
    assert [p.trainable for p in back.parameters()] == [p.trainable for p in model.parameters()]
    assert back.threshold == 0.125 and back.frozen() == model.frozen()
    # the fields are additive: without them the record is what an unfrozen model writes
    plain = source()
    minicnn.save(plain, tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as f:
        plain_record = json.loads(str(f["minicnn.json"]))
    assert "frozen" not in plain_record and "threshold" not in plain_record
    assert set(record) - set(plain_record) == {"frozen", "threshold"}
    loaded = minicnn.load(tmp_path / "plain.npz")  # a file without them: all trainable
    assert loaded.threshold is None and all(p.trainable for p in loaded.parameters())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(frozen=["layers.1.W"]), r"freezes \['layers.1.W'\], no parameters"),
        (lambda r: r.update(frozen="layers.0.W"), "'frozen' should be a list of parameter names"),
        (lambda r: r.update(threshold=1.5), r"'threshold' should be a number in \[0, 1\]"),
    ],
    ids=["unknown", "not-a-list", "threshold"],
)
def test_a_bad_frozen_list_or_threshold_names_the_file(tmp_path, change, message):
    from test_faults import rewrite_record

    path = tmp_path / "m.npz"
    minicnn.save(source(), path)
    rewrite_record(path, path, change)
    with pytest.raises(minicnn.io.ModelFileError, match=message):
        minicnn.load(path)


def test_predict_uses_the_threshold_of_a_two_class_model():
    model = transfer(source(), 2, output="sigmoid")
    images = np.random.default_rng(0).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    p1 = model.predict_proba(images)[:, 1]
    assert model.predict(images).tolist() == (p1 >= 0.5).tolist()
    model.threshold = float(np.median(p1))
    assert model.predict(images).tolist() == (p1 >= model.threshold).tolist()


def test_fit_refuses_a_model_with_everything_frozen():
    model = transfer(source(), 2, output="sigmoid").freeze(upto=20)
    images = np.zeros((4, 3, 32, 32), np.uint8)
    train = minicnn.data.Split(images, np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match=r"every parameter the optimizer updates is frozen"):
        minicnn.fit(model, minicnn.BinaryCrossEntropy(), minicnn.Adam(model.parameters()), train,
                    epochs=1, progress=False, print_fn=None)  # fmt: skip


# ----------------------------------------------------------------------------- fine-tuning


def test_finetune_schedule_stages_rates_and_fresh_state():
    from minicnn.transfer import FineTune

    model = transfer(source(), 2, output="sigmoid")
    optimizer = minicnn.Adam(model.parameters(), lr=1e-4)
    schedule = FineTune(optimizer, model, head_steps=3, head_lr=1e-3, keep_frozen=4)
    assert optimizer.lr == 1e-3 and model.frozen() == [0, 3, 6, 9, 12, 17]
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    for _ in range(3):
        optimizer.step()
        schedule.step()
    assert schedule.k == 3 and optimizer.lr == 1e-4
    assert model.frozen() == [0, 3]  # stage 2: from layer 4 on, everything trains
    assert optimizer.t == 0 and all(not m.any() for m in optimizer.m)  # a fresh state
    state = schedule.state_dict()
    # a resumed run: the stage's freezing comes back with the schedule's state
    again = FineTune(minicnn.Adam(model.parameters(), lr=1e-4), model, 3, 1e-3, keep_frozen=4)
    assert model.frozen() == [0, 3, 6, 9, 12, 17]
    again.load_state_dict(state)
    assert model.frozen() == [0, 3] and again.optimizer.lr == 1e-4
    lines = schedule.stages(steps_per_epoch=1)
    assert (
        lines[0]
        == "epochs 1-3: the new head alone (Dense(128 -> 1); layers 0-18 frozen) at lr 0.001"
    )
    assert lines[1] == "from epoch 4: layers 4 on at lr 0.0001, from a fresh optimizer state"
    cosine = minicnn.schedules.Cosine(optimizer, total_steps=10, warmup_steps=2)
    with_then = FineTune(optimizer, model, 3, 1e-3, then=cosine)
    assert [with_then.rate(k) for k in (0, 3, 4, 5)] == [1e-3, 0.0, 0.5e-4, 1e-4]
    bn_model = source("paper_bn")
    kept = FineTune(minicnn.Adam(bn_model.parameters()), bn_model, 3, 1e-3, keep_statistics=True)
    bns = minicnn.layers.norm.batchnorms(kept.model)
    assert len(bns) == 8 and all(bn.statistics_frozen for bn in bns)
    assert all(bn.keep_statistics for bn in bns)  # the older name
    FineTune(minicnn.Adam(bn_model.parameters()), bn_model, 3, 1e-3)
    assert not any(bn.statistics_frozen for bn in bns)


def test_finetune_trains_the_head_then_everything_and_resumes_exactly(tmp_path):
    from minicnn.transfer import FineTune

    rng = np.random.default_rng(0)
    train = minicnn.data.Split(rng.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8),
                               np.arange(12) % 2)  # fmt: skip
    start = [p.data.copy() for p in transfer(source(), 2, output="sigmoid").parameters()]

    def run(epochs, resume):
        model = transfer(source(), 2, output="sigmoid")
        optimizer = minicnn.Adam(model.parameters(), lr=1e-3)
        schedule = FineTune(optimizer, model, head_steps=2, head_lr=1e-2)  # 1 epoch of 2 batches
        settings = dict(epochs=epochs, batch_size=6, checkpoint=tmp_path / "c.npz")
        settings.update(resume=resume, schedule=schedule, progress=False, print_fn=None)
        history = minicnn.fit(model, minicnn.BinaryCrossEntropy(), optimizer, train, **settings)
        return model, history

    model, history = run(1, False)  # the head epoch alone
    assert [row["lr"] for row in history] == [1e-2]
    moved = [not np.array_equal(p.data, s) for p, s in zip(model.parameters(), start)]
    assert moved == [False] * 12 + [True, True]
    resumed, history = run(2, True)  # then every layer, resumed from the checkpoint
    assert [row["lr"] for row in history] == [1e-2, 1e-3] and resumed.frozen() == []
    assert all(not np.array_equal(p.data, s) for p, s in zip(resumed.parameters(), start))
    (tmp_path / "c.npz").unlink()
    straight, _ = run(2, False)
    for p, q in zip(resumed.parameters(), straight.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


# ----------------------------------------------------------------------------- end to end


def run_example(script, *args):
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / script
    common = ["--image-size", "32", "--no-progress", "--no-cache", "--workers", "1"]
    return subprocess.run([sys.executable, str(path), *common, *map(str, args)],
                          capture_output=True, text=True)  # fmt: skip


def test_train_xray_init_fine_tunes_in_two_stages_on_a_train_test_folder(tmp_path):
    import json

    from test_screening import chest_xray_folder

    src = source()
    minicnn.save(src, tmp_path / "src.npz")
    data = chest_xray_folder(tmp_path / "chest_xray", {"train": (40, 80), "test": (10, 15)})
    out = tmp_path / "ft"
    result = run_example("train_xray.py", "--data", data, "--init", tmp_path / "src.npz",
                         "--epochs", "2", "--head-epochs", "1", "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "epoch 1: the new head alone (Dense(128 -> 1); layers 0-18 frozen) at lr 0.001" in text
    assert "from epoch 2: every layer at lr 0.0001, from a fresh optimizer state" in text
    assert "carved a stratified 10% validation split from train" in text  # no val folder
    results = json.loads((out / "results.json").read_text())
    assert [row["lr"] for row in results["history"]] == [1e-3, 1e-4]
    assert (results["data"]["val"], results["data"]["test"]) == (12, 25)
    assert results["settings"]["init"] == str(tmp_path / "src.npz")
    model = minicnn.load(out / "model.npz")
    assert model.input_shape == (3, 32, 32) and model.class_names == ["NORMAL", "PNEUMONIA"]
    np.testing.assert_allclose(model.mean, MEAN)  # the source's normalisation, kept
    assert model.threshold == results["screening"]["threshold"]
    # another input size: one line naming both shapes
    bad = run_example("train_xray.py", "--data", data, "--init", tmp_path / "src.npz",
                      "--image-size", "48", "--out", tmp_path / "bad")  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (
        f"error: --init {tmp_path / 'src.npz'} takes images of shape (3, 32, 32) (C, H, W), "
        "this run makes (3, 48, 48) (--image-size 48): use --image-size 32, or another model"
    )


@pytest.mark.parametrize("keep", [False, True], ids=["batch-statistics", "keep-statistics"])
def test_train_xray_init_from_a_batchnorm_model_with_its_recipe(tmp_path, keep):
    """paper_bn as the source (16x16 here), --preset paper_bn's recipe: the head stage keeps
    the frozen BatchNorms' running statistics; the second stage trains them, unless
    --keep-statistics keeps them throughout."""
    import json

    from test_screening import chest_xray_folder

    src = source("paper_bn")
    minicnn.save(src, tmp_path / "src.npz")
    data = chest_xray_folder(tmp_path / "chest_xray", {"train": (40, 80), "test": (10, 15)})
    out = tmp_path / "ft"
    result = run_example("train_xray.py", "--data", data, "--init", tmp_path / "src.npz",
                         "--preset", "paper_bn", "--image-size", "16", "--epochs", "2",
                         "--head-epochs", "1", "--batch-size", "16", "--out", out,
                         *(["--keep-statistics"] if keep else []))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "epoch 1: the new head alone (Dense(256 -> 1); layers 0-29 frozen)" in result.stdout
    kept = "from a fresh optimizer state, the BatchNorms on the source's running statistics"
    assert (kept in result.stdout) == keep
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["optimizer"] == "AdamW" and len(results["history"]) == 2
    model = minicnn.load(out / "model.npz")  # the best epoch's: 1 (head alone) or 2
    bns = [(a, b) for a, b in zip(model.layers, src.layers) if isinstance(a, minicnn.BatchNorm2D)]
    same = [np.array_equal(a.running_mean, b.running_mean) for a, b in bns]
    assert len(bns) == 8 and same == [keep or results["best_epoch"] == 1] * 8


def test_train_paper_init_learns_new_classes_with_a_folded_gray_input(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in ("cat", "dog", "owl"):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(20):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / "photos" / c / f"{i}.png")
    minicnn.save(source(), tmp_path / "src.npz")
    out = tmp_path / "ft"
    args = ["--init", tmp_path / "src.npz", "--fold-gray", "--epochs", "1", "--out", out]
    result = run_example("train_paper.py", "--data", tmp_path / "photos", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "its first conv folded to one gray channel" in result.stdout
    assert "every epoch: the new head alone (Dense(128 -> 3)" in result.stdout
    model = minicnn.load(out / "model.npz")
    assert model.input_shape == (1, 32, 32) and repr(model[-1]) == "Dense(128 -> 3)"
    assert model.class_names == ["cat", "dog", "owl"] and model.threshold is None
    assert model.frozen() == [0, 3, 6, 9, 12, 17]  # one epoch: the head's stage
