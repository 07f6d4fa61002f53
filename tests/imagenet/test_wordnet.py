"""The shipped WordNet table: hypernyms, depths, which classes a synset covers, lookup by word."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aim_imagenet import make_wordnet
from aim_imagenet.wordnet import ROOT, taxonomy

TABBY, DOG, CANINE, CARNIVORE, MAMMAL = "n02123045", "n02084071", "n02083346", "n02075296", "n01861778"
WORDNET = Path("/usr/share/wordnet")


def test_the_classes_are_the_1000_ilsvrc_classes_in_order() -> None:
    t = taxonomy()
    assert len(t.classes) == 1000 and t.class_wnids == sorted(t.class_wnids)
    assert (t.classes[0].wnid, t.classes[0].name) == ("n01440764", "tench")
    assert t.classes[281].name == "tabby" and t.classes[281].synonyms == ("tabby", "tabby cat")
    assert t.index(TABBY) == 281 and t.index(DOG) is None


def test_a_dog_breed_lies_under_dog_canine_carnivore_mammal() -> None:
    t = taxonomy()
    beagle = t.lookup("beagle")[0]
    ancestors = t.ancestors(beagle)
    for wnid in (DOG, CANINE, CARNIVORE, MAMMAL, ROOT):
        assert wnid in ancestors
    assert len(set(ancestors)) == len(ancestors)
    assert ancestors.index(DOG) < ancestors.index(CANINE) < ancestors.index(CARNIVORE) < ancestors.index(MAMMAL)
    assert ancestors[-1] == ROOT
    assert [t.name(p) for p in t.parents(beagle)] == ["hound"]
    # the shortest path: dog is also a domestic animal (-> animal), shorter than through mammal
    assert t.depth(ROOT) == 0 and t.depth(MAMMAL) < t.depth(CARNIVORE) and t.depth(DOG) < t.depth(beagle)
    assert t.depth(DOG) == 1 + min(t.depth(p) for p in t.parents(DOG))


def test_classes_under_counts_the_classes_of_a_synset() -> None:
    t = taxonomy()
    assert len(t.classes_under(DOG)) == 118  # the 118 dog breeds of ILSVRC-2012
    assert t.classes_under(TABBY) == frozenset({281})
    assert len(t.classes_under(ROOT)) == 1000 and t.pool_share(ROOT) == 1.0
    assert t.classes_under(DOG) < t.classes_under(CANINE) < t.classes_under(CARNIVORE) < t.classes_under(MAMMAL)
    assert t.pool_share(TABBY) == 0.001


def test_children_and_siblings_stay_in_the_table() -> None:
    t = taxonomy()
    tabby, tiger_cat = TABBY, t.lookup("tiger cat")[0]
    assert tiger_cat in t.siblings(tabby) and tabby not in t.siblings(tabby)
    assert tabby in t.children(t.parents(tabby)[0])
    assert t.children(TABBY) == ()
    assert set(t.children(DOG)) <= set(t.lemmas)


def test_lookup_is_case_insensitive_and_tolerates_plurals() -> None:
    t = taxonomy()
    assert t.lookup("Dogs") == [DOG] == t.lookup("dog")
    assert t.lookup("tabby cats") == [TABBY]
    assert TABBY in t.lookup("TABBY")
    assert t.lookup("Egyptian_cat") == t.lookup("egyptian cat") != []
    assert t.lookup("no such thing at all") == []
    with pytest.raises(KeyError, match="neither an ImageNet class"):
        t.name("n99999999")


@pytest.mark.skipif(not (WORDNET / "data.noun").is_file(), reason="WordNet 3.0 dict files absent (apt-get install "
                    "wordnet-base)")
def test_the_shipped_table_is_what_the_generator_makes(tmp_path: Path) -> None:
    shipped = Path(make_wordnet.__file__).parent / "data" / "imagenet_wordnet.json"
    out = tmp_path / "table.json"
    shutil.copy(shipped, out)  # regenerate from the class list it holds
    assert make_wordnet.main(["--dict", str(WORDNET), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(shipped.read_text())
