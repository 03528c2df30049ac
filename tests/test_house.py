"""The house rules the package's layout keeps: no import circles between retr's modules, and no
module (nor script) importing another module's private (underscore) names."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "retrieval"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py") if "migrations" not in p.parts}


def _imports(path: Path, name: str, known: set[str]):
    """(imported module, imported names) for every import statement in ``path`` (lazy ones too)."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in known:  # `from package import module`
                    yield sub, []
                else:
                    yield base, [a.name]


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    g: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for target, _ in _imports(p, m, known):
            if target in known and target != m and target != "retrieval":
                g[m].add(target)
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    g = _graph()
    # a package's own __init__ is not a module of its own; edges into it are imports of the package
    assert _cycles(g) == []


def _private_imports(paths) -> list[str]:
    known = set(_modules())
    bad = []
    for p in paths:
        name = _module_name(p) if PKG in p.parents else p.stem
        for target, names in _imports(p, name, known):
            if not target.startswith("retrieval") or target == name:
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{p.relative_to(ROOT)}: {target}.{n}")
        tree = ast.parse(p.read_text())
        aliases = {}
        for node in ast.walk(tree):  # `from retrieval.x import mod` / `import retrieval.x as mod`, then mod._name
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    full = a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}"
                    if full.startswith("retrieval") and full in known and full != name:
                        aliases[a.asname or a.name.split(".")[-1]] = full
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{p.relative_to(ROOT)}: {aliases[node.value.id]}.{node.attr}")
    return sorted(set(bad))


def test_no_private_names_imported_across_modules():
    paths = [p for p in PKG.rglob("*.py") if "migrations" not in p.parts]
    assert _private_imports(paths) == []


def test_scripts_use_public_names_only():
    paths = list((ROOT / "scripts").rglob("*.py"))
    assert _private_imports(paths) == []
    hacks = [str(p.relative_to(ROOT)) for p in paths if "sys.path" in p.read_text()]
    assert hacks == []


def _length(path: Path, name: str) -> int:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return node.end_lineno - start + 1
    raise AssertionError(f"{name} not in {path}")


def test_entry_functions_are_short():
    """The functions a reader follows first: each under 80 lines, docstring included."""
    lengths = {"index_folder": _length(PKG / "indexing" / "indexer.py", "index_folder"),
               "commands.index": _length(PKG / "app" / "commands.py", "index"),
               "create_app": _length(PKG / "app" / "server" / "app.py", "create_app")}
    assert {k: v for k, v in lengths.items() if v >= 80} == {}
