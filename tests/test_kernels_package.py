"""kernels/ is minicnn's own package, minicnn.kernels: never a top-level `kernels`."""

import ast
import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import minicnn

ROOT = Path(__file__).resolve().parent.parent


def test_minicnn_kernels_is_the_kernels_folder_under_minicnns_name():
    assert minicnn.kernels.__name__ == "minicnn.kernels"
    assert minicnn.kernels.im2col.__name__ == "minicnn.kernels.im2col"
    assert Path(minicnn.kernels.__file__).parent.name == "kernels"
    assert "kernels" not in sys.modules, (  # nothing in minicnn imports a top-level `kernels`
        "a top-level `kernels` was imported: Numba kernels cached under that module name? "
        "(delete kernels/__pycache__/*.nbi and *.nbc; they recompile)"
    )


def _run(tmp_path, code):
    """Run code from another folder, where an unrelated `kernels` package comes first."""
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
        print(hasattr(minicnn.kernels, "IMPOSTOR"), minicnn.kernels.__name__)
        y = minicnn.MaxPool2D(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))
        print(y.ravel().tolist() == [5.0, 7.0, 13.0, 15.0])
    """,
    )
    assert out == ["False", "minicnn.kernels", "True"]


def test_an_already_imported_foreign_kernels_is_left_alone(tmp_path):
    out = _run(
        tmp_path,
        """
        import kernels, minicnn, sys
        print(kernels.IMPOSTOR, sys.modules["kernels"] is kernels)
        print(minicnn.kernels.__name__, hasattr(minicnn.kernels, "IMPOSTOR"))
    """,
    )
    assert out == ["True", "True", "minicnn.kernels", "False"]


def test_kernels_compiled_looks_where_numba_caches(tmp_path, monkeypatch):
    import numba

    kernels_compiled = minicnn.kernels.kernels_compiled
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))  # NUMBA_CACHE_DIR
    assert not kernels_compiled()  # an empty cache: the example says it is compiling
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "im2col.im2col-14.py311.nbi").write_bytes(b"")
    assert kernels_compiled()
    assert minicnn.kernels_compiled is kernels_compiled  # the public name


def _options():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config["options"]


def test_setup_cfg_lists_every_package_and_maps_kernels_under_minicnn():
    """`find:` cannot see a mapped package, so setup.cfg lists them: a new folder under
    minicnn/ fails here until it is listed, and would otherwise be missing once installed."""
    options = _options()
    listed = set(options["packages"].split())
    folders = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "minicnn").rglob("__init__.py")
    }
    assert listed == folders | {"minicnn.kernels"}
    with_code = {p.parent for p in (ROOT / "minicnn").rglob("*.py")}
    assert all((folder / "__init__.py").exists() for folder in with_code)  # no folder skipped
    mapping = dict(line.split("=") for line in options["package_dir"].split("\n") if line)
    assert {k.strip(): v.strip() for k, v in mapping.items()} == {"minicnn.kernels": "kernels"}
    assert not any(name == "kernels" or name.startswith("kernels.") for name in listed)


def test_no_code_imports_kernels_but_as_minicnns_own():
    """`import kernels` would take whichever package of that name comes first on sys.path."""
    files = [p for folder in ("minicnn", "kernels", "benchmarks", "examples", "tests")
             for p in (ROOT / folder).rglob("*.py")]  # fmt: skip
    wrong = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(n.split(".")[0] in ("kernels", "_minicnn_kernels") for n in names):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if any(n == "minicnn._kernels" for n in names):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert wrong == []
