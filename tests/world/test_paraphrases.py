"""The world reads the sentence, not the phrasing: families of paraphrases (active and passive voice, word
order, synonyms, quantifier and negation forms) must read as the same scene graph.

``data/paraphrases.json`` holds the families. A sentence agrees with its family when its graph is the one most
of the family reads; at least 95% of all sentences must agree. The graph compared is what the parser read
(objects with their count and named attributes, relations with each inverse written one way, attachments,
exclusions, background), before the layout picks positions and unnamed colours.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from aim_world.parse import Parsed, read

FAMILIES: list[dict] = json.loads((Path(__file__).parent / "data" / "paraphrases.json").read_text())
MIN_AGREEMENT = 0.95
#: a relation and the one that says the same with subject and object swapped
INVERSE = {"right of": "left of", "below": "above", "in front of": "behind"}
SYMMETRIC = {"next to"}


def graph(prompt: str) -> tuple:
    """What ``prompt`` asks to draw, independent of how it says it."""
    parsed: Parsed = read(prompt)
    if parsed.subjects_unknown:
        return ("unknown", tuple(parsed.subjects_unknown))
    groups = parsed.groups

    def phrase(i: int) -> tuple:
        g = groups[i]
        return (g.noun, g.count, g.color, g.texture, g.style, round(g.size, 2), g.closeup, g.dropped)

    relations = []
    for s, rel, o in parsed.relations:
        if rel in INVERSE:
            s, rel, o = o, INVERSE[rel], s
        pair = (phrase(s), phrase(o))
        relations.append((rel, *(sorted(pair) if rel in SYMMETRIC else pair)))
    attached = [(phrase(g.parent), g.attach, phrase(i)) for i, g in enumerate(groups) if g.parent is not None]
    excluded = [(e.noun, tuple(sorted(e.attrs.items())), e.background) for e in parsed.excluded]
    return (
        tuple(sorted(phrase(i) for i in range(len(groups)))),
        tuple(sorted(relations)),
        tuple(sorted(attached)),
        tuple(sorted(excluded)),
        parsed.background,
    )


def disagreements() -> tuple[int, list[str]]:
    """(number of sentences, the sentences that read differently from most of their family)."""
    total, odd = 0, []
    for family in FAMILIES:
        graphs = [graph(s) for s in family["sentences"]]
        usual, _ = Counter(graphs).most_common(1)[0]
        total += len(graphs)
        odd += [f"{family['family']}: {s!r}" for s, g in zip(family["sentences"], graphs, strict=True) if g != usual]
    return total, odd


def test_the_paraphrase_set_is_large_and_varied() -> None:
    assert len(FAMILIES) >= 60
    assert sum(len(f["sentences"]) for f in FAMILIES) >= 300
    assert all(len(f["sentences"]) >= 4 for f in FAMILIES)
    assert len({f["family"] for f in FAMILIES}) == len(FAMILIES)


def test_paraphrases_read_as_the_same_scene_graph() -> None:
    total, odd = disagreements()
    assert 1 - len(odd) / total >= MIN_AGREEMENT, "\n".join(odd)


def test_every_family_reads_as_something_drawable() -> None:
    """The graph a family agrees on is a real reading, not the same error for every sentence."""
    for family in FAMILIES:
        usual, _ = Counter(graph(s) for s in family["sentences"]).most_common(1)[0]
        assert usual[0] != "unknown", family["family"]


if __name__ == "__main__":  # list the sentences that disagree with their family
    n, found = disagreements()
    print(f"{n - len(found)} of {n} agree ({1 - len(found) / n:.1%})")
    print("\n".join(found))
