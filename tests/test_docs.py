"""The documentation's Python examples run as printed, so a page that stops matching the code
fails the tests.

Every ```python block of README.md and of docs/*.md (not the run records under docs/results/)
runs here, in a temporary working folder, on small built-in data. The blocks of one page run
in order in one namespace, as a reader pastes them one after another; then the values the
page promises are checked (CHECKS). A block that cannot run here (it needs MPI, data files or
hours) starts with the line "# not run by the tests: <why>"; such blocks are few, and each
says why. Python is fenced as ```python only, so that no example escapes these tests. A page
whose example imports an optional extra (mpi4py, onnx, onnxruntime, torch) that is not
installed is skipped, saying so; the README's test command installs [mpi] and [onnx].
"""

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
SKIP = "# not run by the tests:"
MAIN_COMMAND = "pip install -e . && python examples/train_paper.py"
OPTIONAL = {"mpi4py", "onnx", "onnxruntime", "torch"}  # the extras [mpi], [onnx], [bench]


def name(page):
    return str(page.relative_to(ROOT))


def blocks(page, language="python"):
    """(line number, code) of each fenced block of `language` on the page."""
    text = page.read_text()
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1).strip() == language
    ]


def runnable(page):
    return [(line, code) for line, code in blocks(page) if not code.startswith(SKIP)]


def printed_number(out, after):
    return float(out.split(after)[1].split()[0])


def check_readme(ns, out, folder):
    # the ten lines: one step fills the gradients of the first convolution
    assert ns["model"][0].W.grad.any()
    assert np.isfinite(ns["loss"]) and ns["loss"] > 0


def check_training(ns, out, folder):
    assert len(ns["history"]) == 2
    assert (folder / "run" / "model.npz").exists() and (folder / "run" / "checkpoint.npz").exists()
    probs = ns["probs"]
    assert probs.shape == (len(ns["ds"].test), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert 0 <= float(out.split()[-1]) <= 1  # the printed test accuracy


def check_internals(ns, out, folder):
    assert float(out.split()[-1]) < 1e-6  # the gradient check's worst relative error


def check_learn(ns, out, folder):
    assert printed_number(out, "gradient check:") < 1e-6
    grads = ns["grads"]
    assert max(np.abs(a - b).max() for a, b in zip(grads[True], grads[False])) < 1e-12


def check_screening(ns, out, folder):
    assert out.splitlines()[0] == "[0, 3, 6, 9, 11, 15]"  # the transferred paper13's frozen layers
    assert len(ns["history"]) == 2 and ns["model"].frozen() == []
    chosen, ci = ns["chosen"], ns["ci"]
    assert chosen["rule"] == "target_sensitivity" and chosen["val"]["sensitivity"] >= 0.95
    assert ci["resamples"] == 500
    for figure in ("sensitivity", "specificity", "auc"):
        assert ci[figure]["low"] <= ci[figure]["value"] <= ci[figure]["high"]
    assert 0.5 < ci["auc"]["value"] < 1  # the made-up scores separate the classes, not fully
    assert ns["fpr"][0] == ns["tpr"][0] == 0 and ns["fpr"][-1] == ns["tpr"][-1] == 1
    brier, ece = ns["brier"], ns["ece"]  # calibration, over the same made-up scores
    metrics, y, p = ns["metrics"], ns["y_test"], ns["p_test"]
    assert brier["value"] == pytest.approx(metrics.brier_score(y, p))
    assert ece["value"] == pytest.approx(metrics.expected_calibration_error(y, p))
    for f in (brier, ece):
        assert f["low"] <= f["value"] <= f["high"]
    assert f"Brier {brier['value']:.3f}" in out and (folder / "calibration.png").exists()


def check_explain(ns, out, folder):
    for key in ("cam", "cam8", "sal", "drop"):
        assert ns[key].shape == (2, 64, 64), key
    assert ns["cam"].min() >= 0 and ns["cam"].max() <= 1
    assert ns["maps"].shape == (2, 16, 64, 64) and ns["filters"].shape == (16, 1, 3, 3)
    assert (folder / "cam.png").stat().st_size > 0


def check_data(ns, out, folder):
    x, y = ns["x"], ns["y"]
    assert x.dtype == np.float32 and x.shape[1:] == (3, 32, 32) and y.dtype == np.int64
    assert out.split()[:3] == ["128", "16", "16"]  # 40 images per class, split 80/10/10
    keys = ns["data"].group_keys(ns["names"])  # grouped: no patient on both sides
    assert keys[:4] == ["person1", "person1", "person2", "person3"] and keys[6] == "IM-0002"
    assert not {keys[i] for i in ns["train"]} & {keys[i] for i in ns["val"]}
    assert ns["notes"][0].startswith("grouped by file name (the default rule, 6 groups): train")


CHECKS = {
    "README.md": check_readme,
    "docs/training.md": check_training,
    "docs/internals.md": check_internals,
    "docs/learn.md": check_learn,
    "docs/screening.md": check_screening,
    "docs/explain.md": check_explain,
    "docs/data.md": check_data,
}
RUN = [page for page in PAGES if runnable(page)]


@pytest.mark.parametrize("page", RUN, ids=name)
def test_python_blocks_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples write their files into the working folder
    namespace = {"__name__": "__docs__"}
    for line, code in runnable(page):
        try:
            exec(compile(code, f"{name(page)}, the block at line {line}", "exec"), namespace)
        except ModuleNotFoundError as e:
            if (e.name or "").partition(".")[0] not in OPTIONAL:
                raise
            pytest.skip(f"{name(page)} needs {e.name}, from an optional extra")
    check = CHECKS.get(name(page))
    if check is not None:
        check(namespace, capsys.readouterr().out, tmp_path)


def test_every_check_has_its_page():
    assert set(CHECKS) <= {name(page) for page in RUN}
    assert "README.md" in CHECKS  # the ten lines


def test_blocks_not_run_say_why_and_are_few():
    skipped = [(page, code) for page in PAGES for _, code in blocks(page) if code.startswith(SKIP)]
    for page, code in skipped:
        reason = code.splitlines()[0][len(SKIP) :].strip()
        assert len(reason.split()) >= 3, f"{name(page)}: say why the block is not run: {code!r}"
    assert len(skipped) <= 4


def test_python_is_fenced_as_python():
    """A block fenced ```py, ```python3, ```pycon or with no language would escape the tests."""
    for page in PAGES:
        for m in FENCE.finditer(page.read_text()):
            language = m.group(1).strip()
            assert language and language not in {"py", "python3", "pycon", "ipython"}, (
                f"{name(page)}: fence a Python block as ```python (or give the language): "
                f"{m.group(0)[:60]!r}"
            )


def test_readme_commands():
    readme = (ROOT / "README.md").read_text()
    assert MAIN_COMMAND in readme
    assert len(readme.splitlines()) <= 250
    tests = [code.strip() for _, code in blocks(ROOT / "README.md", "bash") if "pytest" in code]
    assert tests == ['pip install -e ".[test,mpi,onnx]" && MINICNN_REQUIRE_MPI=1 python -m pytest']
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests[0] in ci  # the README's test command is what CI runs, verbatim


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page):
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


def links(page):
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_links_lead_somewhere():
    for page in PAGES:
        for link in links(page):
            if re.match(r"[a-z]+:", link):
                continue  # a web address
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.exists(), f"{name(page)}: {link} leads nowhere"
            if anchor and target.suffix == ".md":
                assert anchor in anchors(target), f"{name(page)}: {link}: no such heading"


def test_every_page_is_reached_from_the_readme():
    """Through links, or named by its path (`docs/x.md`) on a page that is reached."""
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached or not page.exists():
            continue
        reached.add(page)
        text = page.read_text()
        for link in links(page):
            if link.partition("#")[0].endswith(".md"):
                todo.append((page.parent / link.partition("#")[0]).resolve())
        todo += [ROOT / p for p in re.findall(r"\bdocs/[\w-]+\.md\b", text)]
    assert set(PAGES) <= reached, [name(p) for p in set(PAGES) - reached]
