"""The shape of the code: no import circle inside the package, no script that edits ``sys.path``,
and tests that import library modules only, never a script."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _modules(package_dir):
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path, known):
    """The modules of ``known`` that ``path`` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from package import module` imports the module; `from module import name` the module
            found.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                         for alias in node.names)
    return found & set(known)


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_circle_in_the_package():
    modules = _modules(REPO / "recbole_ext")
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_a_circle_is_found_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _edits_sys_path(source):
    """Whether ``source`` calls a method of ``sys.path`` (insert, append, extend …) or assigns it."""
    for node in ast.walk(ast.parse(source)):
        target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
        if isinstance(node, ast.Assign):
            target = next((t for t in node.targets if isinstance(t, ast.Attribute)), None)
        if isinstance(target, ast.Attribute) and target.attr == "path" and getattr(target.value, "id", None) == "sys":
            return True
    return False


def test_no_file_edits_sys_path():
    assert _edits_sys_path("import sys\nsys.path.insert(0, 'x')") and _edits_sys_path("import sys\nsys.path = []")
    for folder in ("recbole_ext", "benchmarks", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            assert not _edits_sys_path(path.read_text(encoding="utf-8")), path


def test_tests_import_no_script():
    benchmark_modules = _modules(REPO / "benchmarks")
    scripts = {name for name, path in benchmark_modules.items() if "__main__" in path.read_text(encoding="utf-8")}
    for path in (REPO / "tests").glob("*.py"):
        assert not _imports(path, benchmark_modules) & scripts, path
