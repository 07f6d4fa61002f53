"""The WordNet vocabulary: concepts a text names (longest first), members of a broader word."""

from __future__ import annotations

from aim_agent.vocabulary import Vocabulary
from aim_imagenet.vocabulary import WordNetVocabulary

DOG, TABBY = "n02084071", "n02123045"


def test_it_is_a_vocabulary_that_cannot_draw_or_annotate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vocab = WordNetVocabulary()
    assert isinstance(vocab, Vocabulary) and vocab.name == "wordnet"
    assert vocab.annotator(tmp_path) is None
    assert vocab.concept_prompts(f"wordnet:{DOG}", 3) == [] and vocab.control_prompts([], 3) == []


def test_concepts_in_finds_the_longest_lemma_first() -> None:
    vocab = WordNetVocabulary()
    found = vocab.concepts_in("tabby (0.62), tiger cat (0.21); kinds: domestic cat (0.93), dogs and sea lions")
    names = [c.name for c in found]
    assert names[:3] == ["tabby", "tiger cat", "domestic cat"]
    assert "cat" not in names and "tiger" not in names  # inside longer lemmas
    assert "dog" in names and "sea lion" in names
    assert all(c.key.startswith("wordnet:n") and c.kind == "object" for c in found)


def test_generic_and_ambiguous_words_name_no_concept() -> None:
    vocab = WordNetVocabulary()
    assert vocab.concepts_in("an object that can be part of the whole thing at the top") == []
    assert [c.name for c in vocab.concepts_in("can")] == ["can"]  # alone, it means the container


def test_members_and_concept() -> None:
    vocab = WordNetVocabulary()
    dogs = vocab.members("dogs")
    assert len(dogs) == 118 and "beagle" in dogs and "tabby" not in dogs
    assert vocab.members("tabby") == frozenset() and vocab.members("entity") == frozenset()
    info = vocab.concept(f"wordnet:{TABBY}")
    assert info is not None and info.name == "tabby" and info.category == "domestic cat"
    assert vocab.concept("object:dog") is None and vocab.concept("wordnet:n99999999") is None
