"""minicnn.distributed: data-parallel training over MPI, tested as real separate processes.

The MPI tests start `mpiexec -n 2` (MPICH's, which the `[mpi]` extra installs) with
tests/mpi_worker.py, talking over shared memory and loopback only, each run bounded by a
subprocess timeout and by MINICNN_MPI_TIMEOUT inside. Without mpiexec and mpi4py they are
skipped, saying so; .ci/run sets MINICNN_REQUIRE_MPI=1, which turns that skip into a failure.

Bounds, two ranks on half a batch each against one process on the whole batch, 5 Adam steps:
- float64: the two add the same products in other orders (two half-batch sums, then the
  allreduce), so the weights agree to a norm-wise relative error of 1e-12 (measured 4e-16
  for paper, 8e-14 with BatchNorm, whose 1/std amplifies the rounding of the statistics);
- float32: the same reordering rounds at 6e-8 per operation. Adam divides each gradient by
  its own running size, so a rounding in a small gradient is not damped, and a ReLU or
  max-pool near-tie decided the other way moves single entries: as in tests/test_fast.py
  (the engines' float32 comparison over Adam steps), 1e-5 (measured 2e-7 and 1e-6).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import minicnn
from minicnn import distributed
from minicnn.data import Split, batches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "mpi_worker.py")
LOCAL_ONLY = {  # shared memory between the ranks, the launcher on loopback: no network
    "UCX_TLS": "self,sm",
    "UCX_NET_DEVICES": "lo",
    "HYDRA_IFACE": "lo",
    "MINICNN_MPI_TIMEOUT": "30",
}
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


def find_mpiexec():
    """(path of MPICH's mpiexec, None) or (None, why not)."""
    if importlib.util.find_spec("mpi4py") is None:
        return None, "mpi4py is not installed (pip install -e '.[mpi]')"
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")  # the mpich wheel's
    path = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if path is None:
        return None, "no mpiexec (pip install -e '.[mpi]' brings MPICH's)"
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    if "HYDRA" not in version.stdout:
        return None, f"{path} is not MPICH's mpiexec (hydra), which these tests drive"
    return path, None


MPIEXEC, WHY_NOT = find_mpiexec()


@pytest.fixture(scope="module")
def mpiexec():
    if MPIEXEC is None:
        if os.environ.get("MINICNN_REQUIRE_MPI"):
            pytest.fail(f"MINICNN_REQUIRE_MPI is set but {WHY_NOT}")
        pytest.skip(f"MPI tests skipped: {WHY_NOT}")
    return MPIEXEC


def launch(args, timeout, cwd=None, env=None):
    """Run an mpiexec command line; (CompletedProcess, seconds). A hang fails the test."""
    base = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env=base | LOCAL_ONLY | (env or {}))  # fmt: skip
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(args)} hung for {timeout} s:\n{e.stdout}\n{e.stderr}")
    return done, time.perf_counter() - t0


@pytest.fixture(scope="module")
def suite(mpiexec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mpi")
    done, _ = launch([mpiexec, "-n", "2", sys.executable, WORKER, "suite", str(folder)], 180)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    return json.loads(lines[0][len("RESULTS ") :])


# ----------------------------------------------------------------------------- one process


def test_import_minicnn_never_imports_mpi4py():
    code = (
        "import sys, minicnn, minicnn.distributed as d; "
        "assert (d.rank, d.size, d.is_root) == (0, 1, True); "
        "print('mpi4py' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_launched_size_reads_the_launchers_variables(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_size() == 4
    monkeypatch.setenv("PMI_SIZE", "8")
    assert distributed.launched_size() == 8


def test_one_process_group_changes_nothing():
    group = distributed.Group()
    model = minicnn.models.paper(num_classes=4, image_size=32)
    split = Split(np.zeros((3, 3, 32, 32), np.uint8), np.arange(3))
    assert group.allreduce_gradients(model, 1.5, 7) == (1.5, 7)
    assert group.shard(split) is split and group.part is None
    assert group.share(minicnn.SoftmaxCrossEntropy(), np.arange(3), 3) == 1.0
    weighted = minicnn.SoftmaxCrossEntropy(class_weights=[1.0, 2.0, 3.0, 4.0])
    assert group.share(weighted, np.arange(3), 3) == 1.0
    assert distributed.group(False).size == 1 and distributed.group(group) is group


def test_batch_parts_make_up_the_global_batch():
    """Rank r's part of each batch, in rank order, is the batch; a tail under P is skipped."""
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (23, 3, 4, 4), dtype=np.uint8), np.arange(23))
    whole = [y for _, y in batches(split, 8, seed=3)]  # 8, 8, 7
    for P in (2, 3):
        parts = [[y for _, y in batches(split, 8, seed=3, part=(r, P))] for r in range(P)]
        for k, y in enumerate(whole):
            assert np.array_equal(np.concatenate([p[k] for p in parts]), y)
        assert [len(p[-1]) for p in parts] == [7 // P + (r < 7 % P) for r in range(P)]
    assert [len(y) for _, y in batches(split, 8, seed=3, part=(0, 8))] == [1, 1]  # 7 < 8


def test_each_part_augments_with_its_own_stream():
    split = Split(np.full((4, 3, 8, 8), 128, np.uint8), np.arange(4))
    draws = lambda rng: np.full((2, 3, 8, 8), rng.random(), np.float32)  # noqa: E731

    def first(part):
        return next(batches(split, 4, seed=1, augment=lambda x, rng: draws(rng), part=part))[0]

    assert first((0, 2))[0, 0, 0, 0] != first((1, 2))[0, 0, 0, 0]


def bn_model(fast):
    layers = [
        minicnn.Conv2D(2, 3, 3, padding="same", rng=1, bias=False),
        minicnn.BatchNorm2D(3),
        minicnn.ReLU(),
        minicnn.MaxPool2D(2),
        minicnn.Flatten(),
        minicnn.Dense(12, 4, rng=2),
        minicnn.BatchNorm1D(4),
    ]
    return minicnn.Sequential(layers, input_shape=(2, 4, 4), fast=fast).astype(np.float64)


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
def test_synced_batchnorm_over_two_equal_parts(fast, tmp_path):
    """Two ranks holding the same part (total = 2 x): the global batch's statistics are the
    part's, with twice the count; dx is the part's, gamma's and beta's gradients (summed over
    the ranks already) twice the part's. Afterwards the layers are plain BatchNorms again."""
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((3, 4))
    runs = []
    for synced in (False, True):
        model = bn_model(fast)
        summed = distributed.sync_batchnorm(model, lambda v: 2 * v) if synced else []
        model.forward(x, training=True)
        dx = model.backward(dout, input_grad=True)
        bns = minicnn.layers.norm.batchnorms(model)
        runs.append((dx, [p.grad.copy() for bn in bns for p in bn.parameters()],
                     [bn.running_var.copy() for bn in bns]))  # fmt: skip
        if synced:
            assert summed == [p for bn in bns for p in bn.parameters()]
            distributed.unsync_batchnorm(model)
            assert not any("moments" in vars(bn) or "sums" in vars(bn) for bn in bns)
            minicnn.save(model, tmp_path / "m.npz")
            loaded = minicnn.load(tmp_path / "m.npz")
            assert [type(layer) for layer in loaded] == [type(layer) for layer in model]
    (dx, grads, var), (dx2, grads2, var2) = runs
    np.testing.assert_allclose(dx2, dx, rtol=1e-10)
    for g, g2 in zip(grads, grads2):
        np.testing.assert_allclose(g2, 2 * g, rtol=1e-10)
    # running_var moves towards var * M / (M - 1): M = 2 m instead of m (m = 48, then 3)
    for v, v2, m in zip(var, var2, (48, 3)):
        var_b = (v - 0.9) / 0.1 * (m - 1) / m
        np.testing.assert_allclose(v2, 0.9 + 0.1 * var_b * 2 * m / (2 * m - 1), rtol=1e-10)


def test_data_parallel_parts_and_shares_of_a_batch():
    """The pieces DataParallel hands fit, with one process standing for rank 0 of 2."""
    group = distributed.Group()
    group.part = (0, 2)
    parallel = distributed.DataParallel(group, None)
    weighted = minicnn.SoftmaxCrossEntropy(class_weights=[1.0, 3.0])
    loss = parallel.shared(weighted)
    split = Split(np.zeros((10, 3, 2, 2), np.uint8), np.array([0, 1] * 5))
    seen = []

    def train_batches(epoch, skip=0, part=None):
        return batches(split, 4, shuffle=False, part=part)

    for x, y in parallel.batches(train_batches, len(split), 4)(1):
        seen.append((len(y), parallel.global_size, loss.share))
    assert seen == [(2, 4, 0.5), (2, 4, 0.5), (1, 2, 0.5)]  # its count over the global one
    logits = np.array([[0.5, -0.5], [0.0, 1.0]])
    loss.share = 0.25
    value = loss.forward(logits, np.array([0, 1]))
    assert value == pytest.approx(0.25 * weighted.forward(logits, np.array([0, 1])))
    np.testing.assert_allclose(loss.backward(), 0.25 * weighted.backward())


# ----------------------------------------------------------------------------- two ranks


def test_two_ranks_train_paper_as_one_process(suite):
    """Five SGD steps agree to rounding; Adam's (see mpi_worker.train) within 1e-9."""
    assert suite["paper_float64"]["error"] <= 1e-12
    assert suite["paper_float64_batch_7"]["error"] <= 1e-12  # parts of 4 and 3 images
    assert suite["paper_float32"]["error"] <= 1e-5
    assert suite["paper_float64_adam"]["error"] <= 1e-9
    assert all(run["same_bits_on_every_rank"] for run in suite.values() if "error" in run)


def test_sync_batchnorm_matches_one_process_and_per_rank_does_not(suite):
    assert suite["paper_bn_sync_float64"]["error"] <= 1e-12
    assert suite["paper_bn_sync_float64_reference"]["error"] <= 1e-12  # the layers' own code
    assert suite["paper_bn_sync_float32"]["error"] <= 1e-5
    assert suite["paper_bn_per_rank"]["error"] > 1e-2  # each rank's statistics: not the same


def test_sync_batchnorm_inside_residual_blocks(suite):
    for engine in ("float64", "float64_reference"):  # paper_res: BatchNorm in every branch
        assert suite[f"paper_res_sync_{engine}"]["error"] <= 1e-12
        assert suite[f"paper_res_sync_{engine}"]["same_bits_on_every_rank"]
    assert suite["paper_res_sync_float32"]["error"] <= 1e-5
    assert suite["paper_res_per_rank"]["error"] > 1e-3


def test_each_rank_scores_its_part_of_the_validation_split(suite):
    # evaluate() feeds float32 images, so the engine computes the scores in float32
    assert suite["validation"]["loss"] <= 1e-6 and suite["validation"]["accuracy"]


def test_a_synced_run_saves_and_leaves_plain_batchnorms(suite):
    done = suite["synced_then_plain"]
    assert done["plain"]
    assert "BatchNorm2D" in done["saved"] and not [n for n in done["saved"] if "Sync" in n]


def test_resume_at_two_ranks_and_from_one_process(suite):
    resume = suite["resume"]
    assert resume["two_ranks_bit_identical"]
    assert resume["from_one_process"] == [1, 2] and resume["first_epoch_kept"]
    assert resume["files_of_rank_1"] == ""  # rank 0 alone wrote the checkpoints


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_step(suite):
    preempted = suite["preempted"]
    assert preempted["stopped"] == [[2, 3, 143], [2, 3, 143]]  # rank 1's vote, one step on
    assert preempted["bit_identical"] and preempted["epochs"] == [1, 2]


def test_refusals_name_the_problem_and_the_rank(suite):
    assert "a batch of 1 image cannot be cut into 2 parts" in suite["batch_of_1"]
    assert "rank 1's train images have other pixels than rank 0's" in suite["other_pixels"]
    assert "rank 1 has 39 train images of (3, 32, 32), rank 0 40" in suite["fewer_images"]
    assert 'rank 1 has class_names ["cat", "dog", "fox", "emu"], rank 0' in suite["class_names"]


@pytest.mark.parametrize(
    "mode, said",
    [
        ("raise", "error: rank 1: RuntimeError: rank 1 fails on purpose; stopping all 2 ranks"),
        ("exit", "error: rank 1: SystemExit: 3; stopping all 2 ranks"),
        ("kill", "BAD TERMINATION"),
        ("hang", "error: rank 0 waited more than 2 s in"),
    ],
)
def test_a_failing_rank_stops_the_others(mpiexec, mode, said):
    args = [mpiexec, "-n", "2", sys.executable, WORKER, "fail", mode]
    done, seconds = launch(args, 60, env={"MINICNN_MPI_TIMEOUT": "2"})
    assert done.returncode != 0
    assert "finished" not in done.stdout
    assert said in done.stdout + done.stderr
    assert seconds < 30


def test_train_paper_on_two_ranks_like_one_process(mpiexec, tmp_path):
    """examples/train_paper.py unchanged under mpiexec trains as one process does, and rank 0
    alone writes (each rank in a folder of its own, as on two machines).

    The two runs add the same gradients in other orders, and Adam makes rounding differences
    grow (see mpi_worker.train): the first epoch's training loss agrees to 1%, and both runs
    learn; the final accuracies on 80 test images may differ by more than a point. The suite
    above holds the gradients of two ranks to those of one process (SGD, to rounding)."""
    script = os.path.join(ROOT, "examples", "train_paper.py")
    args = [script, "--per-class", "40", "--epochs", "2", "--image-size", "32", "--dropout", "0"]
    args += ["--lr", "3e-3", "--no-progress", "--out", "run"]  # learns in 2 epochs (36%)
    folders = [tmp_path / name for name in ("one", "rank0", "rank1")]
    for folder in folders:
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    one = subprocess.run([sys.executable, *args], cwd=folders[0], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr
    ranks = [mpiexec, "-n", "1", "-wdir", str(folders[1]), sys.executable, *args, ":"]
    ranks += ["-n", "1", "-wdir", str(folders[2]), sys.executable, *args]
    two, _ = launch(ranks, 300)
    assert two.returncode == 0, two.stdout + two.stderr
    results = [json.loads((f / "run" / "results.json").read_text()) for f in folders[:2]]
    accuracy = [r["metrics"]["accuracy"] for r in results]
    first = [
        (f / "run" / "history.csv").read_text().splitlines()[1].split(",") for f in folders[:2]
    ]
    assert first[0][0] == first[1][0] == "1"
    loss = [float(row[1]) for row in first]  # train_loss of epoch 1
    assert abs(loss[0] - loss[1]) <= 1e-2 * loss[0], loss
    assert min(accuracy) > 0.15, accuracy  # both learned: chance is 5%
    assert sorted(os.listdir(folders[1] / "run")) == sorted(os.listdir(folders[0] / "run"))
    assert os.listdir(folders[2]) == []  # rank 1 wrote nothing, not even a folder
    assert two.stdout.count("settings: preset paper") == 1  # rank 0 alone prints
    assert two.stdout.count("data-parallel: 2 ranks x ") == 1  # x T threads
    assert "data-parallel" not in one.stdout
    threads = results[1]["data_parallel"]["threads"]  # results.json says it too
    assert results[1]["data_parallel"] == {"ranks": 2, "threads": threads} and threads >= 1
    assert f"data-parallel: 2 ranks x {threads} threads" in two.stdout
    assert results[0]["data_parallel"]["ranks"] == 1


def test_sigterm_under_mpiexec_stops_every_rank_and_the_run_resumes(mpiexec, tmp_path):
    """`minicnn train` on 2 ranks: SIGTERM reaches rank 1 alone (tests/signal_at.py) after
    step 1 of epoch 2; every rank stops after step 2, rank 0 writes the checkpoint and says
    how to continue, and the job ends with 143. The command it prints resumes the run."""
    args = ["--per-class", "8", "--classes", "3", "--image-size", "32", "--epochs", "2"]
    args += ["--batch-size", "8", "--no-progress", "--out", "run"]
    signal_at = [os.path.join(ROOT, "tests", "signal_at.py"), "2", "1", "SIGTERM", "1"]
    cut, _ = launch([mpiexec, "-n", "2", sys.executable, *signal_at, "-m", "minicnn", "train",
                     *args], 120, cwd=tmp_path)  # fmt: skip
    assert cut.returncode == 143, cut.stdout + cut.stderr
    lines = [line for line in cut.stdout.splitlines() if line.startswith("SIGTERM: ")]
    assert len(lines) == 1, cut.stdout  # rank 0 alone says it
    assert lines[0].startswith("SIGTERM: stopped after step 2 of epoch 2; checkpoint ")
    command = lines[0].split("continue with: ")[1]
    assert command.startswith("mpiexec -n 2 python -m minicnn train ") and "--resume" in command
    resumed, _ = launch([mpiexec, "-n", "2", sys.executable, "-m", "minicnn", "train", *args,
                         "--resume"], 120, cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count("resumed from run/checkpoint.npz after step 2 of epoch 2") == 1
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 3  # header, 2 epochs


def test_a_refusal_of_rank_0_before_training_ends_every_rank(mpiexec, tmp_path):
    """--resume without a checkpoint: rank 0 says so, and rank 1 ends too instead of waiting
    for it in the first exchange (MINICNN_MPI_TIMEOUT would end it only after 30 s)."""
    args = [mpiexec, "-n", "2", sys.executable, "-m", "minicnn", "train", "--resume"]
    done, seconds = launch([*args, "--out", "none", "--no-progress"], 60, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: --resume: no checkpoint in none (checkpoint.npz not found): check --out, or "
        "train without --resume to start a run"
    ]
    assert seconds < 20 and not (tmp_path / "none").exists()
