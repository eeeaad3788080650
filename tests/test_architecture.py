"""The package's import direction: command modules (``*_cmd``, ``cli``) import libraries, never the reverse, and no
module imports itself back through others. Read from the source with ast, function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import batchpipes

PACKAGE = Path(batchpipes.__file__).parent

#: (importer, imported, line)
Edge = tuple[str, str, int]


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name -> file (a package's ``__init__`` by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> list[Edge]:
    """The package modules ``name`` imports, anywhere in the file (module level or inside functions)."""
    is_package = path.name == "__init__.py"
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".")
                drop = node.level - 1 if is_package else node.level
                base = ".".join(base_parts[:len(base_parts) - drop] if drop else base_parts)
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:  # ``import batchpipes.aws.jobs.Watcher``-like: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.append((name, target, getattr(node, "lineno", 0)))
    return edges


def is_command(module: str) -> bool:
    last = module.rpartition(".")[2]
    return last.endswith("_cmd") or last == "cli"


def direction_problems(edges: list[Edge], paths: dict[str, Path]) -> list[str]:
    return [f"{paths[src].relative_to(paths[src].parents[len(src.split('.')) - 1])}:{line}: library module {src} "
            f"imports command module {dst}: move what it needs into a library module"
            for src, dst, line in sorted(set(edges)) if not is_command(src) and is_command(dst)]


def cycles(edges: list[Edge]) -> list[list[str]]:
    """One cycle (a list of modules, the first repeated at the end) for each strongly connected group (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for src, dst, _ in edges:
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found = []
    for group in groups:  # the shortest way from the group's first module back to itself (breadth first)
        start = min(group)
        came_from: dict[str, str] = {}
        queue = [start]
        while start not in came_from:
            v = queue.pop(0)
            for w in sorted(graph[v] & group):
                if w not in came_from:
                    came_from[w] = v
                    queue.append(w)
        path = [start]
        while path[-1] != start or len(path) == 1:
            path.append(came_from[path[-1]])
        found.append(path[::-1])
    return sorted(found)


def package_cycle_problems(edges: list[Edge], paths: dict[str, Path]) -> list[str]:
    """Cycles between (sub)packages through library modules, e.g. ``batchpipes.mnp`` importing
    ``batchpipes.aws.jobs`` while ``batchpipes.aws.infra`` imports ``batchpipes.mnp``: each hop named by one import."""

    def package_of(module: str) -> str:
        return module if paths[module].name == "__init__.py" else module.rpartition(".")[0]

    by_hop: dict[tuple[str, str], str] = {}
    package_edges = []
    for src, dst, line in sorted(set(edges)):
        a, b = package_of(src), package_of(dst)
        if a != b and not is_command(src) and not is_command(dst):
            by_hop.setdefault((a, b), f"{src} imports {dst}")
            package_edges.append((a, b, line))
    return [f"package import cycle: {' -> '.join(cycle)} ("
            + "; ".join(by_hop[hop] for hop in zip(cycle, cycle[1:], strict=False)) + ")"
            for cycle in cycles(package_edges)]


def check(root: Path, package: str) -> list[str]:
    paths = modules(root, package)
    known = set(paths)
    edges = [e for name, path in paths.items() for e in imports(name, path, known)]
    problems = direction_problems(edges, paths)
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    problems += package_cycle_problems(edges, paths)
    return problems


def test_commands_import_libraries_and_nothing_imports_itself_back() -> None:
    problems = check(PACKAGE, "batchpipes")
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_wrong_direction_and_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "lib.py").write_text("def f():\n    from .sub import thing_cmd\n")
    (pkg / "cli.py").write_text("from . import lib\n")
    (pkg / "sub" / "thing_cmd.py").write_text("from .. import lib\nfrom ..sub.a import x\n")
    (pkg / "sub" / "a.py").write_text("import pkg.sub.b\n")
    (pkg / "sub" / "b.py").write_text("from pkg.sub import a\nfrom .. import tool\n")
    (pkg / "tool.py").write_text("from .sub.a import y\n")
    assert check(pkg, "pkg") == [
        "pkg/lib.py:2: library module pkg.lib imports command module pkg.sub.thing_cmd: move what it needs into a "
        "library module",
        "import cycle: pkg.lib -> pkg.sub.thing_cmd -> pkg.lib",
        "import cycle: pkg.sub.a -> pkg.sub.b -> pkg.sub.a",
        "package import cycle: pkg -> pkg.sub -> pkg (pkg.tool imports pkg.sub.a; pkg.sub.b imports pkg.tool)",
    ]
