"""The shape of the package, read from its imports: levels that import only downwards, no
import circle, nothing imported through the package's face, and modules of a readable size.

The levels are docs/internals.md's layout, lowest first. A module may import modules of its
own level or of lower ones; an import that reaches up, or a circle, fails here with its path.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 460  # about a screenful of screens: one concept per module

LEVELS = [  # lowest first; a name covers the module and, for a package, all inside it
    ["minicnn.kernels", "minicnn.version", "minicnn.parameter"],
    ["minicnn.data", "minicnn.metrics", "minicnn.schedules"],
    ["minicnn.layers", "minicnn.heads", "minicnn.losses", "minicnn.gradcheck"],
    ["minicnn.fast", "minicnn.optim"],  # optim's default step is the fast engine's fused one
    ["minicnn.sequential"],
    [
        "minicnn.models",
        "minicnn.saving",
        "minicnn.io",
        "minicnn.plots",
        "minicnn.overlays",
        "minicnn.mpi",
        "minicnn.agreement",
        "minicnn.distributed",
        "minicnn.explain",
        "minicnn.transfer",
    ],  # fmt: skip
    ["minicnn.training", "minicnn.train", "minicnn.onnx"],
    ["minicnn", "minicnn.cli", "minicnn.__main__"],
]


def modules():
    """{module name: path} for minicnn/ and kernels/ (installed as minicnn.kernels)."""
    found = {}
    for top, name in ((ROOT / "minicnn", "minicnn"), (ROOT / "kernels", "minicnn.kernels")):
        for path in sorted(top.rglob("*.py")):
            parts = [name, *path.relative_to(top).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def is_package(name):
    return MODULES[name].name == "__init__.py"


def imports(name):
    """The minicnn modules `name` imports (at any depth in the file), as module names."""
    package = name if is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:
                    found.add(target)  # a module: `from . import heads`
                elif base in MODULES:
                    found.add(base)  # a name defined in base (its __init__ for a package)
    found.discard(name)
    return found


def level(name):
    best = None
    for i, names in enumerate(LEVELS):
        for prefix in names:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{name} is on no level of LEVELS: add it"
    return best[0]


def test_every_module_has_a_level_and_imports_only_downwards():
    upwards = [
        f"{name} (level {level(name)}) imports {target} (level {level(target)})"
        for name in MODULES
        for target in sorted(imports(name))
        if level(target) > level(name)
    ]
    assert upwards == []


def test_no_module_imports_through_the_package_face():
    """minicnn/__init__.py imports nearly everything: importing it back makes a circle."""
    through = [n for n in MODULES if n not in ("minicnn.cli", "minicnn.__main__")
               and not n.startswith("minicnn.cli.") and "minicnn" in imports(n)]  # fmt: skip
    assert through == []


def test_the_import_graph_has_no_circle():
    graph = {name: imports(name) for name in MODULES}
    state, circles = {}, []

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])
    assert circles == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_readable(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines: split it by concern"
