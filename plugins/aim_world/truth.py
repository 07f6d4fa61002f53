"""The words that name world concepts, for scoring labels against synthetic neurons' ground truth.

Everything here is read from the vocabulary (``vocabulary.py``): noun names, their synonyms and
plurals, colour and texture synonyms, background synonyms, background region names, and the
nouns' categories. A concept's *terms* are the normalised words and phrases that name it:

- its label's own words (``'boats and ships'`` -> boats, ships, and their singulars), without the
  parenthesised notes of the shipped labels (``'gloves (hands)'``: the note says what MAIA
  called it, not what the neuron detects);
- for a single noun, its name, synonyms and plurals; for several nouns, the forms of the nouns
  its label or key names (``boat`` for boats and ships), and the category's words when the nouns
  are a whole vocabulary category (``animals``);
- colours, textures, backgrounds and regions with their synonyms. A synonym that is itself a
  noun (``clouds`` for the sky background) or another region's name is left out, so that a
  term names one kind of thing; a noun synonym that is a category word (``vehicle`` for car)
  is left out too: it names the category, not the noun.

A group of at most :data:`MAX_LISTED_MEMBERS` nouns (and nothing else) also lists each member's
terms: a label that names every member names the group ('cups, teapots, buckets, baskets,
handbags and briefcases' for objects with handles).

:func:`vocabulary_concepts` lists every atomic concept of the world (each noun, category, colour,
texture, background and region) for the evaluator's baselines; :func:`unit_truth` is one
neuron's ground truth (:class:`aim_agent.eval.truth.UnitTruth`).
"""

from __future__ import annotations

import re
from functools import cache

from aim_agent.eval.truth import ConceptTruth, UnitTruth, normalize
from aim_world import vocabulary as vocab
from aim_world.neurons import REGIONS, Concept, NeuronSpec
from aim_world.scene import TEXTURE_ADJECTIVES

#: how a whole category is called in a label, and the words that name it
CATEGORY_LABELS: dict[str, str] = {
    "animal": "animals", "person": "people", "vehicle": "vehicles", "building": "buildings and structures",
    "plant": "plants", "food": "food", "electronics": "electronic devices", "clothing": "clothing",
    "instrument": "musical instruments", "sport": "sports equipment", "nature": "things of nature",
    "object": "household objects",
}
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "animal": ("animal", "creature", "wildlife", "fauna"),
    "person": ("person", "people", "human", "humans"),
    "vehicle": ("vehicle", "transport", "transportation"),
    "building": ("building", "structure", "architecture"),
    "plant": ("plant", "vegetation", "flora"),
    "food": ("food", "foods", "edible", "meal"),
    "electronics": ("electronics", "electronic device", "gadget", "device"),
    "clothing": ("clothing", "clothes", "garment", "apparel"),
    "instrument": ("instrument", "musical instrument"),
    "sport": ("sports equipment", "sports gear", "sporting goods", "sport"),
    "nature": ("nature", "natural thing"),
    "object": ("household object", "household item"),
}
def singulars(word: str) -> list[str]:
    """The singular of a plural ``word`` ('boxes' -> ['box'], 'horses' -> ['horse']); [] when it is none.

    A candidate counts when its plural is ``word``; among several, a vocabulary word wins
    ('horse' over 'hors'), else the first by the usual English rules."""
    head, _, last = word.rpartition(" ")
    prefix = head + " " if head else ""
    candidates = []
    if last.endswith("ies"):
        candidates.append(last[:-3] + "y")
    if last.endswith("ves"):
        candidates += [last[:-3] + "f", last[:-3] + "fe"]
    if last.endswith("es"):
        candidates.append(last[:-2])
    if last.endswith("s"):
        candidates.append(last[:-1])
    valid = [prefix + c for c in candidates if c and last in {p.rpartition(" ")[2] for p in vocab.plurals(c)}]
    known = [c for c in valid if c in _known_words()]
    return known or valid[:1]


def word_forms(phrase: str) -> set[str]:
    """The normalised phrase with its singular (when it is a plural) or its plurals (when it is not)."""
    phrase = normalize(phrase)
    if not phrase:
        return set()
    singular = singulars(phrase)
    if singular:
        return {phrase, *singular}
    return {phrase, *(normalize(p) for p in vocab.plurals(phrase))}


@cache
def _known_words() -> frozenset[str]:
    """Every vocabulary word, normalised: nouns with their synonyms and plurals, colours, textures,
    backgrounds, regions, category words."""
    words = set(vocab.noun_lexicon()) | set(vocab.color_lexicon()) | set(vocab.TEXTURE_SYNONYMS)
    words |= set(vocab.background_lexicon()) | set(REGIONS)
    words |= {w for group in CATEGORY_WORDS.values() for w in group}
    return frozenset(normalize(w) for w in words)


@cache
def _category_word_forms() -> frozenset[str]:
    return frozenset(f for words in CATEGORY_WORDS.values() for w in words for f in word_forms(w))


@cache
def _noun_forms() -> frozenset[str]:
    return frozenset(vocab.noun_lexicon())


def noun_terms(noun: str) -> set[str]:
    """A noun's name, synonyms and their plurals, less synonyms that name a whole category."""
    entry = vocab.NOUN_BY_NAME[noun]
    terms = word_forms(entry.name)
    for synonym in entry.synonyms:
        forms = word_forms(synonym)
        if not forms & _category_word_forms():
            terms |= forms
    return terms


def category_nouns(category: str) -> tuple[str, ...]:
    return tuple(n.name for n in vocab.NOUNS if n.category == category)


def category_terms(category: str) -> set[str]:
    terms = word_forms(CATEGORY_LABELS[category])
    for word in CATEGORY_WORDS[category]:
        terms |= word_forms(word)
    return terms


def color_terms(color: str) -> set[str]:
    return {color} | {normalize(w) for w, c in vocab.COLOR_SYNONYMS.items() if c == color}


def texture_terms(texture: str) -> set[str]:
    words = {w for w, t in vocab.TEXTURE_SYNONYMS.items() if t == texture} | {texture, TEXTURE_ADJECTIVES[texture]}
    return {normalize(w) for w in words}


def _unambiguous(words: set[str], own: str) -> set[str]:
    """Synonyms that are not a noun and not another region's name (the concept's own name stays)."""
    own_forms = word_forms(own)
    regions = {f for r in REGIONS if r != own for f in word_forms(r)}
    return {w for w in words if w in own_forms or (w not in _noun_forms() and w not in regions)}


def background_terms(background: str) -> set[str]:
    entry = vocab.BACKGROUND_BY_NAME[background]
    words = {f for w in (entry.name, *entry.synonyms) for f in word_forms(w)}
    return _unambiguous(words, entry.name)


def region_terms(region: str) -> set[str]:
    words = word_forms(region)
    if region in vocab.BACKGROUND_BY_NAME:  # the sky region reads like the sky background
        entry = vocab.BACKGROUND_BY_NAME[region]
        words |= {f for w in entry.synonyms for f in word_forms(w)}
    return _unambiguous(words, region)


def label_phrases(label: str) -> list[str]:
    """The parts of a label, without parenthesised notes: 'boats and ships' -> ['boats', 'ships']."""
    text = re.sub(r"\([^)]*\)", " ", label)
    parts = re.split(r" and | or |,", text)
    return [p for p in (normalize(part) for part in parts) if p]


def whole_category(nouns: tuple[str, ...]) -> str | None:
    """The category whose nouns are exactly ``nouns``, if any."""
    if not nouns:
        return None
    category = vocab.NOUN_BY_NAME[nouns[0]].category
    return category if set(nouns) == set(category_nouns(category)) else None


def concept_terms(concept: Concept) -> set[str]:
    """Every normalised word or phrase that names ``concept`` (see the module docstring)."""
    terms: set[str] = set()
    phrases = label_phrases(concept.label)
    for phrase in phrases:
        terms |= word_forms(phrase)
    nouns = tuple(concept.nouns)
    if len(nouns) == 1:
        terms |= noun_terms(nouns[0])
    elif nouns:
        for word in (concept.key, *phrases):
            noun = vocab.lookup_noun(word)
            if noun not in nouns:
                continue
            by_name = noun in word_forms(word)  # 'boat' names the boat, 'vehicle' (a synonym of car) does not
            if by_name or not word_forms(word) & _category_word_forms():
                terms |= noun_terms(noun)
        category = whole_category(nouns)
        if category:
            terms |= category_terms(category)
    for color in concept.colors:
        terms |= color_terms(color)
    for texture in concept.textures:
        terms |= texture_terms(texture)
    for background in concept.backgrounds:
        terms |= background_terms(background)
    for region in concept.regions:
        terms |= region_terms(region)
    return terms


def concept_atoms(concept: Concept) -> list[str]:
    """What the concept covers: ``noun:dog``, ``color:blue``, ``texture:stripes``, ``background:beach``,
    ``region:sky``."""
    return ([f"noun:{n}" for n in concept.nouns] + [f"color:{c}" for c in concept.colors]
            + [f"texture:{t}" for t in concept.textures] + [f"background:{b}" for b in concept.backgrounds]
            + [f"region:{r}" for r in concept.regions])


#: groups up to this size list their members' terms (a label may name a group by naming every member)
MAX_LISTED_MEMBERS = 12


def concept_truth(concept: Concept, key: str | None = None) -> ConceptTruth:
    nouns = tuple(concept.nouns)
    listed = 2 <= len(nouns) <= MAX_LISTED_MEMBERS and not (concept.colors or concept.textures
                                                              or concept.backgrounds or concept.regions)
    return ConceptTruth(key=key or concept.key, label=concept.label, terms=sorted(concept_terms(concept)),
                        atoms=concept_atoms(concept),
                        members=[sorted(noun_terms(n)) for n in nouns] if listed else [])


@cache
def region_backgrounds() -> dict[str, tuple[str, ...]]:
    """Each background region and the backgrounds that have it ('sky': nine of them, 'sea': the beach)."""
    from aim_world.render import background_parts

    found: dict[str, list[str]] = {}
    for background in vocab.BACKGROUNDS:
        for region in background_parts(background.name, 32, 0)[1]:
            found.setdefault(region, []).append(background.name)
    return {r: tuple(bs) for r, bs in found.items()}


def condition_truth(concept: Concept) -> ConceptTruth:
    """A conditional neuron's condition. Only its presence matters, and a region that only one
    background has is present exactly when that background is: when the condition is one such
    region, the background's words name it too ('night sky' as a condition is 'a night background')."""
    truth = concept_truth(concept)
    atoms = concept_atoms(concept)
    if len(atoms) != 1 or not concept.regions:
        return truth
    owners = region_backgrounds().get(concept.regions[0], ())
    if len(owners) != 1:
        return truth
    extra = background_terms(owners[0]) | word_forms(background_label(owners[0]))
    return truth.model_copy(update={"terms": sorted(set(truth.terms) | extra)})


def unit_truth(spec: NeuronSpec) -> UnitTruth:
    """The ground truth of one neuron, as the evaluator reads it (for ``cond``: the concept, then the condition)."""
    concepts = [concept_truth(c) for c in spec.concepts]
    if spec.kind == "cond":
        concepts[1] = condition_truth(spec.concepts[1])
    return UnitTruth(unit=spec.name, kind=spec.kind, label=spec.label, concepts=concepts)


@cache
def atomic_concepts() -> tuple[Concept, ...]:
    """Every atomic concept of the world: each noun, category, colour, texture, background and region."""
    out = [Concept(key=f"noun:{n.name}", label=plural_label(n.name), nouns=(n.name,)) for n in vocab.NOUNS]
    out += [Concept(key=f"category:{c}", label=CATEGORY_LABELS[c], nouns=category_nouns(c)) for c in CATEGORY_LABELS]
    out += [Concept(key=f"color:{c}", label=f"{c} objects", colors=(c,)) for c in vocab.COLORS]
    out += [Concept(key=f"texture:{t}", label=f"{TEXTURE_ADJECTIVES[t]} patterns", textures=(t,))
            for t in vocab.TEXTURES]
    out += [Concept(key=f"background:{b.name}", label=background_label(b.name), backgrounds=(b.name,))
            for b in vocab.BACKGROUNDS if b.name != vocab.DEFAULT_BACKGROUND]
    noun_labels = {plural_label(n.name) for n in vocab.NOUNS}
    out += [Concept(key=f"region:{r}", label=f"{r} in the background" if r in noun_labels else r, regions=(r,))
            for r in REGIONS if r != "plain backdrop"]
    return tuple(out)


def background_label(background: str) -> str:
    """'beach scenes', 'mountain scenes'."""
    return f"{(singulars(background) or [background])[0]} scenes"


@cache
def vocabulary_concepts() -> tuple[ConceptTruth, ...]:
    """:func:`atomic_concepts` as the evaluator reads them (label, terms, atoms)."""
    return tuple(concept_truth(c) for c in atomic_concepts())


def plural_label(noun: str) -> str:
    """How a label names a noun: its plural ('dogs', 'sunglasses', 'fish')."""
    return vocab.plurals(noun)[0]
