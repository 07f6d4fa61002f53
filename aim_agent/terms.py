"""Concept terms in a blind describer's text: which concepts a description names, and how strongly.

A describer writes what it sees in words. Taggers (the photo tagger of ``aim_imagenet``) write
``"tabby (0.62), tiger cat (0.21); kinds: domestic cat (0.93), feline (0.95)"``: each term with its
probability. Other describers write plain lists (``"sand, sea, a red dog"``) or percentages
(``"trees (63%)"``). :func:`terms_of` reads all three into ``{term: strength}`` with strengths in
[0, 1] (a term named without a number counts 1.0), so any scientist or evaluation can ask "does this
image show X, and how strongly" without knowing which describer wrote the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: a description names a concept when its strength is at least this (a tagger's probability; plain words are 1.0)
SHOWS = 0.15
#: ``term (0.62)`` or ``term (63%)``
_SCORED = re.compile(r"([^,;:()]+?)\s*\((\d+(?:\.\d+)?)(%?)\)")
#: section names a describer may put before a list (``kinds: ...``); they are not terms themselves
_SECTION = re.compile(r"^\s*[a-z ]{1,20}:\s*", re.I)
_ARTICLE = re.compile(r"^(?:a|an|the|some)\s+", re.I)


def normal(term: str) -> str:
    """A term in the form used for matching: lower case, single spaces, no article, no plural 's'."""
    text = _ARTICLE.sub("", " ".join(term.lower().replace("_", " ").split()))
    if len(text) > 3 and text.endswith("es") and text[-3] in "sxz":
        return text[:-2]
    if len(text) > 3 and text.endswith("s") and not text.endswith("ss"):
        return text[:-1]
    return text


def terms_of(text: str) -> dict[str, float]:
    """``{normal term: strength}`` of one description (the largest strength when a term repeats)."""
    found: dict[str, float] = {}
    scored = list(_SCORED.finditer(text))
    if scored:
        for m in scored:
            term = normal(_SECTION.sub("", m.group(1)))
            value = float(m.group(2)) / (100.0 if m.group(3) else 1.0)
            if term:
                found[term] = max(found.get(term, 0.0), min(1.0, value))
        return found
    for part in re.split(r"[,;]|\band\b", text):
        term = normal(_SECTION.sub("", part.strip(" .")))
        if term and len(term) <= 60:
            found[term] = 1.0
    return found


def strength(terms: Mapping[str, float], concept: str) -> float:
    """How strongly a description's terms show ``concept`` (0 when they do not name it)."""
    return terms.get(normal(concept), 0.0)


def named(text: str) -> list[str]:
    """The scored terms of a description as the describer wrote them ("tiger cat"), in order: for labels."""
    return [name for m in _SCORED.finditer(text) if (name := _SECTION.sub("", m.group(1)).strip())]
