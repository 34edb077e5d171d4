"""minicnn always uses its own `kernels` package, even when another one shadows the name."""

import subprocess
import sys
import textwrap
from pathlib import Path

import minicnn

OURS = Path(minicnn.__file__).resolve().parent.parent / "kernels"


def test_minicnn_kernels_is_the_folder_beside_minicnn():
    assert Path(minicnn.kernels.__file__).resolve().parent == OURS
    assert minicnn.kernels.__minicnn__ is True


def _run(tmp_path, code):
    impostor = tmp_path / "kernels"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("IMPOSTOR = True\n")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,  # the impostor comes first on sys.path ('' = the working folder)
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_shadowing_kernels_package_is_not_used(tmp_path):
    out = _run(
        tmp_path,
        """
        import numpy as np, minicnn
        print(hasattr(minicnn.kernels, "IMPOSTOR"), minicnn.kernels.__minicnn__)
        y = minicnn.MaxPool2D(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))
        print(y.ravel().tolist() == [5.0, 7.0, 13.0, 15.0])
    """,
    )
    assert out == ["False", "True", "True"]


def test_an_already_imported_foreign_kernels_is_left_alone(tmp_path):
    out = _run(
        tmp_path,
        """
        import kernels, minicnn, sys
        print(kernels.IMPOSTOR, sys.modules["kernels"] is kernels)
        print(minicnn.kernels.__name__, minicnn.kernels.__minicnn__)
    """,
    )
    assert out == ["True", "True", "_minicnn_kernels", "True"]


def test_kernels_compiled_looks_where_numba_caches(tmp_path, monkeypatch):
    import numba

    from minicnn._kernels import kernels_compiled

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))  # NUMBA_CACHE_DIR
    assert not kernels_compiled()  # an empty cache: the example says it is compiling
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "im2col.im2col-14.py311.nbi").write_bytes(b"")
    assert kernels_compiled()
