"""The layers of the core, checked: what may import what (docs/architecture.md draws them).

A module may import from its own layer or from layers below; imports used only for type
hints (under ``if TYPE_CHECKING:``) are exempt. The core never imports a plugin package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "aim_agent"
PLUGIN_PACKAGES = {"aim_world", "aim_transformers", "aim_diffusers", "aim_occlusion", "aim_imagenet"}
#: the layers, bottom up; a top-level name of aim_agent/ -> its layer
LAYERS = {
    # 0: data that travels: images and their records, files, provider contracts, a unit, the log
    "images": 0, "files": 0, "providers": 0, "overlay": 0, "system": 0, "log": 0, "terms": 0,
    # 1: building blocks: models, exemplars, SAEs, tools and their one call path, plugins, configuration
    "models": 1, "exemplars": 1, "sae": 1, "tools": 1, "plugins": 1, "hookspecs": 1, "config": 1, "session": 1,
    "circuits": 1, "vocabulary": 1,
    # 2: the agent (graph, scientist, critic, sandbox) and its report
    "agent": 2, "report": 2, "scientist": 2,
    # 3: the ways in: command line, MCP server, benchmarks, evaluation, sweeps
    "mcp_server": 3, "cli": 3, "benchmarks": 3, "eval": 3, "sweep": 3, "__init__": 3, "__main__": 3,
}


def _runtime_imports(tree: ast.AST) -> list[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_core_imports_no_plugin_and_no_layer_above_its_own() -> None:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        top = path.relative_to(ROOT).with_suffix("").parts[0]
        assert top in LAYERS, f"{path}: new top-level module {top!r}: give it a layer in this test and the docs"
        for module in _runtime_imports(ast.parse(path.read_text())):
            parts = module.split(".")
            if parts[0] in PLUGIN_PACKAGES:
                problems.append(f"{path.relative_to(ROOT)} imports the plugin {module}")
            elif parts[0] == "aim_agent" and len(parts) > 1 and LAYERS.get(parts[1], 3) > LAYERS[top]:
                problems.append(f"{path.relative_to(ROOT)} (layer {LAYERS[top]}) imports {module} "
                                f"(layer {LAYERS[parts[1]]})")
    assert not problems, "\n".join(problems)
