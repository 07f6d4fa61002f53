"""The agent must not carry the shipped neurons' answers: no source of the offline scientist or of the
agent core may hold the shipped noun groups or the shipped conditions as a literal list.

Read from the shipped neuron definitions (never copied here): each group of nouns a shipped concept
covers (birds: bird, eagle, owl, ...), and the conditions of the conditional neurons by type (the
nouns, the background regions). A literal tuple/list/set of strings (or a comma-separated string)
that is mostly one of those sets is an answer key.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from aim_world.neurons import list_synthetic

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (ROOT / "plugins" / "aim_world" / "scientist", ROOT / "aim_agent" / "agent")


def shipped_groups() -> dict[str, frozenset[str]]:
    """Every shipped concept that covers several nouns: its key -> its nouns."""
    groups = {}
    for spec in list_synthetic():
        for concept in spec.concepts:
            if len(concept.nouns) >= 2:
                groups[concept.key] = frozenset(concept.nouns)
    return groups


def shipped_conditions() -> dict[str, frozenset[str]]:
    """The conditions of the shipped conditional neurons by type: noun conditions, region conditions, ..."""
    by_type: dict[str, set[str]] = {}
    for spec in list_synthetic():
        if spec.kind != "cond":
            continue
        b = spec.concepts[1]
        kind = ("noun" if b.nouns else "color" if b.colors else "texture" if b.textures
                else "background" if b.backgrounds else "region")
        by_type.setdefault(kind, set()).add(b.key)
    return {k: frozenset(v) for k, v in by_type.items() if len(v) >= 3}


def literal_sets(path: Path) -> Iterator[tuple[int, frozenset[str]]]:
    """(line, words) of every literal collection of strings in a Python file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2 and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
        ):
            yield node.lineno, frozenset(str(e.value).strip().lower() for e in node.elts)  # type: ignore[attr-defined]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.count(",") >= 2 \
                and len(node.value) < 300:
            yield node.lineno, frozenset(w.strip().lower() for w in node.value.split(",") if w.strip())


def is_key(words: frozenset[str], answer: frozenset[str]) -> bool:
    """Mostly the answer set: covers 75% of it, and 50% of the literal is from it."""
    common = len(words & answer)
    return common >= 2 and common >= 0.75 * len(answer) and common >= 0.5 * len(words)


def test_the_answer_sets_are_read_from_the_shipped_definitions() -> None:
    groups = shipped_groups()
    assert {"bird", "bug", "boat", "animal"} <= set(groups)
    assert "eagle" in groups["bird"]
    conditions = shipped_conditions()
    assert {"leash", "spoon", "umbrella"} <= conditions["noun"]


def test_no_source_holds_the_shipped_groups_or_conditions_as_literal_lists() -> None:
    answers = {f"group {k}": v for k, v in shipped_groups().items()}
    answers |= {f"{k} conditions": v for k, v in shipped_conditions().items()}
    found = []
    for folder in SCANNED:
        for path in sorted(folder.rglob("*.py")):
            for line, words in literal_sets(path):
                for name, answer in answers.items():
                    if is_key(words, answer):
                        found.append(f"{path.relative_to(ROOT)}:{line} holds the shipped {name}: {sorted(words)}")
    assert not found, "answer keys in the agent's sources:\n" + "\n".join(found)
