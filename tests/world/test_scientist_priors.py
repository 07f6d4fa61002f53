"""The offline scientist holds no answer key: none of its source tables lists the shipped synthetic neurons'
noun groups or conditions (they are read from neurons.py, the scientist's sources are read as text)."""

from __future__ import annotations

import ast
from pathlib import Path

from aim_world import vocabulary as vocab
from aim_world.neurons import list_synthetic

SCIENTIST = Path(__file__).resolve().parents[2] / "plugins" / "aim_world" / "scientist"


def _tables() -> list[tuple[str, set[str]]]:
    """Every literal collection of strings in the scientist's sources (tuples, lists, sets, dict keys and values)."""
    found = []
    for path in sorted(SCIENTIST.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            parts: list[ast.expr] = []
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                parts = list(node.elts)
            elif isinstance(node, ast.Dict):
                parts = [k for k in node.keys if k is not None] + list(node.values)
            strings = {p.value.lower() for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)}
            if len(strings) >= 2:
                found.append((f"{path.name}:{node.lineno}", strings))
    return found


def _categories() -> list[set[str]]:
    return [{n.name for n in vocab.NOUNS if n.category == c} for c in {n.category for n in vocab.NOUNS}]


def test_no_table_lists_a_shipped_noun_group() -> None:
    """A table holding every noun of a shipped concept (birds, bugs, boats, trucks, ...) is an answer key; whole
    vocabulary categories (animals) are the world's own structure and do not count."""
    groups = {c.key: set(c.nouns) for s in list_synthetic() for c in s.concepts if len(c.nouns) >= 2}
    groups = {k: g for k, g in groups.items() if g not in _categories()}
    assert len(groups) >= 10, "the shipped set has noun groups to check against"
    for where, strings in _tables():
        for key, nouns in groups.items():
            assert not nouns <= strings, f"{where} lists every noun of the shipped concept {key!r}"


def test_no_table_lists_the_shipped_conditions() -> None:
    """The conditions (B of 'A only when B') of the shipped conditional neurons, by any of their words."""
    words: set[str] = set()
    for spec in list_synthetic():
        if spec.kind == "cond":
            b = spec.concepts[1]
            words |= {b.key, *b.nouns, *b.colors, *b.textures, *b.backgrounds, *b.regions}
    assert len(words) >= 15
    for where, strings in _tables():
        shared = strings & words
        assert len(shared) < 3 or len(shared) < 0.5 * len(strings), (
            f"{where} lists shipped conditions: {sorted(shared)}")


def test_the_check_catches_the_old_tables() -> None:
    """The tables removed from the scientist (its hypernym groups and its companions) would fail the checks."""
    old_groups = {("bird", "eagle", "owl", "parrot", "duck", "chicken", "penguin", "flamingo", "peacock", "swan")}
    old_companions = {"leash", "person", "tree", "glove", "spoon", "tie", "umbrella", "dog", "cat", "bird", "car",
                      "hat", "ball", "mountain"}
    birds = next(set(c.nouns) for s in list_synthetic() for c in s.concepts if c.key == "bird")
    assert any(birds <= set(g) for g in old_groups)
    words = {w for s in list_synthetic() if s.kind == "cond" for w in (*s.concepts[1].nouns, s.concepts[1].key)}
    assert len(old_companions & words) >= 0.5 * len(old_companions)
