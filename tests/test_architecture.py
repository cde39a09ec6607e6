"""The architecture holds: imports flow down the layers of ``ditkit.layers`` (lazy ones included), no import
cycles, no function over 60 lines. Each check names the file and line to fix, and is shown to catch a planted
bad import on a synthetic tree."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from ditkit.layers import ALLOWED_IMPORTS, LAYERS

SRC = Path(__file__).resolve().parents[1] / "src" / "ditkit"
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    importer: str  # dotted module name of the importing file
    imported: str  # dotted module name it reaches (a module of the tree, or the package that holds the name)


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py file below the package folder ``root``."""
    names = {}
    for file in sorted(root.rglob("*.py")):
        parts = list(file.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = file
    return names


def _resolve(target: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``target`` that is a module of the tree (``a.b.name`` → ``a.b`` when name is not)."""
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def imports_of(module: str, file: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of the tree's package in ``file``, at module level or inside functions, resolved."""
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    top = module.split(".")[0]
    found = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import name` reaches pkg.name when that is a module, else pkg itself
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == top or target.startswith(top + "."):
                found.append(Import(file, node.lineno, module, _resolve(target, modules)))
    return found


def unit_of(module: str) -> str:
    """The layer unit of a module: its package or top-level module under the root (the root itself: its name)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _where(imp: Import, root: Path) -> str:
    return f"{imp.file.relative_to(root.parent)}:{imp.line}"


def _cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components (of more than one module) of the import graph."""
    graph: dict[str, set[str]] = {}
    for imp in edges:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node):  # Tarjan; the graph is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def check_imports(root: Path, layers=LAYERS, allowed=ALLOWED_IMPORTS) -> list[str]:
    """Problems with the imports below package folder ``root``: units missing from ``layers``, imports of a
    unit in the same or a higher layer, and import cycles between modules; ``allowed`` edges are exempt."""
    rank = {unit: i for i, names in enumerate(layers) for unit in names}
    modules = module_names(root)
    problems = [f"{file.relative_to(root.parent)}: '{unit_of(name)}' is in no layer of ditkit/layers.py"
                for name, file in modules.items() if unit_of(name) not in rank]
    edges = list(dict.fromkeys(  # one per (file, line, target): `from m import a, b` is one import of m
        imp for name, file in modules.items() for imp in imports_of(name, file, modules)
        if imp.imported != imp.importer and (imp.importer, imp.imported) not in allowed))
    for imp in edges:
        src, dst = unit_of(imp.importer), unit_of(imp.imported)
        if src != dst and src in rank and dst in rank and rank[dst] >= rank[src]:
            how = "in the same layer as" if rank[dst] == rank[src] else "in a higher layer than"
            problems.append(f"{_where(imp, root)}: {imp.importer} imports {imp.imported}: '{dst}' is {how} '{src}'")
    for component in _cycles(edges):
        inside = [imp for imp in edges if imp.importer in component and imp.imported in component]
        problems.append("import cycle " + " ↔ ".join(component) + ": "
                        + ", ".join(f"{_where(imp, root)} ({imp.importer} → {imp.imported})" for imp in inside))
    return problems


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions and methods longer than ``limit`` lines, from the ``def`` line to the last line of the body."""
    found = []
    for file in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{file.relative_to(root.parent)}:{node.lineno}: {node.name} is {length} lines")
    return found


# --------------------------------------------------------------------------------------------
# The real tree
# --------------------------------------------------------------------------------------------


def test_imports_flow_down_the_layers_without_cycles():
    problems = check_imports(SRC)
    assert not problems, "imports against ditkit/layers.py:\n" + "\n".join(problems)


def test_allow_list_entries_are_still_needed():
    """An allowed import that is gone (or now follows the rules) is taken off the list."""
    modules = module_names(SRC)
    edges = {(imp.importer, imp.imported) for name, file in modules.items() for imp in imports_of(name, file, modules)}
    for edge in ALLOWED_IMPORTS:
        assert edge in edges, f"{edge} is allowed in ditkit/layers.py but no longer imported: remove the entry"
        without = {key: why for key, why in ALLOWED_IMPORTS.items() if key != edge}
        assert check_imports(SRC, allowed=without), f"{edge} breaks no rule: remove it from ALLOWED_IMPORTS"


def test_every_layer_unit_exists():
    units = {unit_of(name) for name in module_names(SRC)}
    assert {unit for names in LAYERS for unit in names} == units


def test_no_function_over_60_lines():
    found = long_functions(SRC)
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(found)


# --------------------------------------------------------------------------------------------
# The checks catch what they should (a synthetic tree)
# --------------------------------------------------------------------------------------------

TOY_LAYERS = (("errors",), ("models", "data"), ("pipelines",), ("pkg",))


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", "errors.py": "", "models/__init__.py": "", "data/__init__.py": "",
                       "pipelines/__init__.py": "", **files}.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_clean_tree_passes(tmp_path):
    root = _tree(tmp_path, {
        "models/net.py": "from ..errors import DitkitError\nfrom . import parts\n",
        "models/parts.py": "import pkg.errors\n",
        "pipelines/run.py": "from pkg.models.net import Net\n\ndef f():\n    from ..models import parts\n",
    })
    assert check_imports(root, TOY_LAYERS, {}) == []


def test_a_planted_lazy_upward_import_is_caught_with_its_file_and_line(tmp_path):
    root = _tree(tmp_path, {
        "models/net.py": "import os\n\n\ndef build():\n    from ..pipelines import run\n    return run\n",
        "pipelines/run.py": "",
    })
    assert check_imports(root, TOY_LAYERS, {}) == [
        "pkg/models/net.py:5: pkg.models.net imports pkg.pipelines.run: 'pipelines' is in a higher layer than 'models'"]


def test_sideways_upward_to_the_facade_and_unknown_units_are_caught(tmp_path):
    root = _tree(tmp_path, {
        "models/net.py": "from ..data import loader\n",  # same layer
        "data/loader.py": "from pkg import something\n",  # the facade, the top layer
        "extra.py": "",  # in no layer
    })
    problems = "\n".join(check_imports(root, TOY_LAYERS, {}))
    assert "pkg/models/net.py:1: pkg.models.net imports pkg.data.loader: 'data' is in the same layer as 'models'" \
        in problems
    assert "pkg/data/loader.py:1: pkg.data.loader imports pkg: 'pkg' is in a higher layer than 'data'" in problems
    assert "pkg/extra.py: 'extra' is in no layer" in problems


def test_a_cycle_inside_a_package_is_caught_and_the_allow_list_exempts_it(tmp_path):
    root = _tree(tmp_path, {
        "models/a.py": "from .b import B\n",
        "models/b.py": "def f():\n    from .a import A\n",
    })
    problems = check_imports(root, TOY_LAYERS, {})
    assert problems == ["import cycle pkg.models.a ↔ pkg.models.b: pkg/models/a.py:1 (pkg.models.a → pkg.models.b), "
                        "pkg/models/b.py:2 (pkg.models.b → pkg.models.a)"]
    assert check_imports(root, TOY_LAYERS, {("pkg.models.b", "pkg.models.a"): "planted"}) == []


def test_long_functions_are_caught(tmp_path):
    def body(indent):
        return "".join(f"{indent}x{i} = {i}\n" for i in range(59))

    root = tmp_path / "pkg"
    root.mkdir()
    ok = f"def ok():\n{body('    ')}"  # 60 lines
    (root / "m.py").write_text(f"{ok}\n\nclass C:\n    def long(self):\n{body(' ' * 8)}        return 1\n")  # 61
    assert long_functions(root) == ["pkg/m.py:64: long is 61 lines"]
