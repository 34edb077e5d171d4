"""The README's Python examples run as printed (```python blocks; ```py ones are sketches)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples write run/ into the working folder
    namespace = {}
    exec(compile(BLOCKS[i], f"README.md block {i}", "exec"), namespace)
    if "optimizer" in namespace and "history" not in namespace:  # the ten-line example
        assert namespace["model"][0].W.grad.any()
    if "check_layer" in namespace:  # the gradient-check example prints the worst error
        assert float(capsys.readouterr().out.split()[-1]) < 1e-6
    if "history" in namespace:
        assert len(namespace["history"]) == 2
        assert (tmp_path / "run" / "model.npz").exists()
        assert namespace["probs"].shape == (len(namespace["ds"].test), 10)
