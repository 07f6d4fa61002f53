"""The layers of the code, checked: what may import what (docs/architecture.md draws them).

The graph is built from every import statement of every module: at the top of a file, inside
functions, and under ``if TYPE_CHECKING:`` alike (a type-only import is still a dependency a
reader has to follow). It must have no cycle, and no module may import from a layer above its
own. The core (``aim_agent/``) never imports a plugin package; the plugins (``plugins/``) sit
above the whole core.

An edge goes to the module an import names: ``from aim_agent.tools import base`` is an edge to
``aim_agent.tools.base``, ``from aim_agent.tools.base import tool`` too; ``from aim_agent.models
import load_model`` is an edge to the package ``aim_agent.models`` (its ``__init__``). The
parent packages Python runs on the way are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "aim_agent"
PLUGINS = REPO / "plugins"
#: a plugin package -> the folder that holds it
PLUGIN_ROOTS = {
    "aim_world": PLUGINS,
    "aim_transformers": PLUGINS,
    "aim_diffusers": PLUGINS,
    "aim_imagenet": PLUGINS,
    "aim_occlusion": PLUGINS / "aim-plugin-occlusion",
}
#: the layers, bottom up; a top-level name of aim_agent/ -> its layer
LAYERS = {
    # 0: data that travels: images and their records, files, provider contracts, a unit, the log
    "images": 0, "files": 0, "providers": 0, "overlay": 0, "system": 0, "log": 0, "terms": 0,
    "activations": 0,
    # 1: the plugin contract: the types the hooks promise, and the hooks
    "contracts": 1, "hookspecs": 1,
    # 2: building blocks: models, exemplars, SAEs, tools and their one call path, plugins, configuration
    "models": 2, "exemplars": 2, "sae": 2, "tools": 2, "plugins": 2, "config": 2, "session": 2,
    "circuits": 2, "vocabulary": 2,
    # 3: the agent (graph, scientist, critic, sandbox) and its report
    "agent": 3, "report": 3, "scientist": 3,
    # 4: the ways in: command line, MCP server, benchmarks, evaluation, sweeps
    "mcp_server": 4, "cli": 4, "benchmarks": 4, "eval": 4, "sweep": 4, "__init__": 4, "__main__": 4,
}
#: plugins come above the whole core: they import it, it never imports them
PLUGIN_LAYER = max(LAYERS.values()) + 1

Graph = dict[str, set[str]]


# ------------------------------------------------------------------------------------ the checker


def modules_under(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (a folder under ``root``): dotted name -> file."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, str | None]]:
    """Every import in ``tree``, wherever it stands: (module, name) pairs, relative imports made absolute.

    ``import a.b`` gives ``('a.b', None)``; ``from a import b, c`` gives ``('a', 'b'), ('a', 'c')``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.extend((source, alias.name) for alias in node.names)
    return found


def resolve(source: str, name: str | None, known: Iterable[str]) -> str | None:
    """The known module an import reaches: the submodule ``source.name`` if there is one, else the
    longest known prefix of ``source``; None outside the known modules."""
    known = set(known)
    if name is not None and f"{source}.{name}" in known:
        return f"{source}.{name}"
    parts = source.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def module_graph(modules: Mapping[str, Path]) -> Graph:
    """Module -> the modules (among ``modules``) it imports anywhere in its file."""
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for source, imported in imported_names(tree, name, path.name == "__init__.py"):
            target = resolve(source, imported, modules)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import loops: each strongly connected group of two or more modules, sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(start: str) -> None:
        # iterative Tarjan: (node, its remaining successors)
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups)


def a_loop(graph: Mapping[str, set[str]], group: list[str]) -> list[str]:
    """One concrete loop through a strongly connected ``group``, as a path that ends where it starts."""
    members = set(group)
    start = group[0]
    # breadth-first from start back to start, inside the group
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    return group


def upward_imports(graph: Mapping[str, set[str]], layer_of: Callable[[str], int]) -> list[str]:
    """Each import from a module into a layer above its own, as ``'a (layer 1) imports b (layer 2)'``."""
    return [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module in sorted(graph)
        for target in sorted(graph[module])
        if layer_of(target) > layer_of(module)
    ]


def layer_of(module: str) -> int:
    """The layer of a module: its top-level name under ``aim_agent``; any plugin is above the core."""
    parts = module.split(".")
    if parts[0] != "aim_agent":
        return PLUGIN_LAYER
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def loop_report(graph: Mapping[str, set[str]], groups: list[list[str]]) -> str:
    return "\n".join(
        f"{len(group)} modules in a loop, e.g. {' -> '.join(a_loop(graph, group))}" for group in groups
    )


# -------------------------------------------------------------------------------- the whole code


def all_modules() -> dict[str, Path]:
    modules = modules_under(REPO, "aim_agent")
    for package, root in PLUGIN_ROOTS.items():
        modules.update(modules_under(root, package))
    return modules


@pytest.fixture(scope="module")
def graph() -> Graph:
    return module_graph(all_modules())


def test_every_top_level_module_of_the_core_has_a_layer() -> None:
    for name in all_modules():
        parts = name.split(".")
        if parts[0] == "aim_agent" and len(parts) > 1:
            assert parts[1] in LAYERS, f"new top-level module {parts[1]!r}: give it a layer here and in the docs"


def test_every_plugin_package_is_checked() -> None:
    # a package right under plugins/, or inside a distribution folder there (aim-plugin-occlusion/aim_occlusion)
    found = {p.parent.name for p in PLUGINS.glob("*/__init__.py")}
    found |= {p.parent.name for p in PLUGINS.glob("*/*/__init__.py") if not (p.parent.parent / "__init__.py").exists()}
    assert found <= set(PLUGIN_ROOTS), f"plugins not in PLUGIN_ROOTS: {sorted(found - set(PLUGIN_ROOTS))}"


@pytest.mark.parametrize("package", ["aim_agent", *PLUGIN_ROOTS])
def test_no_import_loops(graph: Graph, package: str) -> None:
    groups = [g for g in cycles(graph) if any(m.split(".")[0] == package for m in g)]
    assert not groups, loop_report(graph, groups)


def test_no_module_imports_from_a_layer_above_its_own(graph: Graph) -> None:
    problems = upward_imports(graph, layer_of)
    assert not problems, "\n".join(problems)


def test_the_core_imports_no_plugin() -> None:
    problems = []
    for name, path in modules_under(REPO, "aim_agent").items():
        tree = ast.parse(path.read_text())
        for source, _ in imported_names(tree, name, path.name == "__init__.py"):
            if source.split(".")[0] in PLUGIN_ROOTS:
                problems.append(f"{name} imports the plugin {source}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------ the checker, checked


def _write(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return modules_under(root, "pkg")


def test_the_checker_finds_a_loop_through_a_function_local_and_a_type_only_import(tmp_path: Path) -> None:
    modules = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from pkg.c import thing\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
        "pkg/d.py": "import pkg.a\n",
    })
    graph = module_graph(modules)
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert a_loop(graph, ["pkg.a", "pkg.b", "pkg.c"]) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    # cut the type-only import: no loop left
    (tmp_path / "pkg/c.py").write_text("x = 1\n")
    assert cycles(module_graph(modules_under(tmp_path, "pkg"))) == []


def test_the_checker_finds_an_upward_import_even_inside_a_function(tmp_path: Path) -> None:
    modules = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "def f():\n    from pkg.high import g\n",
        "pkg/high.py": "from pkg.low import f\n",
        "pkg/mid/__init__.py": "",
        "pkg/mid/x.py": "from ..low import f\n",
    })
    graph = module_graph(modules)
    layers = {"low": 0, "mid": 1, "high": 2}

    def layer(module: str) -> int:
        parts = module.split(".")
        return layers.get(parts[1], 3) if len(parts) > 1 else 3

    assert graph["pkg.mid.x"] == {"pkg.low"}
    assert upward_imports(graph, layer) == ["pkg.low (layer 0) imports pkg.high (layer 2)"]
    assert cycles(graph) == [["pkg.high", "pkg.low"]]


def test_the_checker_finds_loops_in_a_synthetic_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
