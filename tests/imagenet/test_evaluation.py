"""The photo evaluation's scoring: strict/near matches in WordNet, the held-out predictive AUC, the baselines."""

from __future__ import annotations

import numpy as np

from aim_imagenet.evaluation import heldout_auc, label_concept, label_synsets, most_correlated, near_match
from aim_imagenet.wordnet import taxonomy

TABBY = 281  # n02123045 tabby, tabby cat; parent: domestic cat


def test_strict_and_near_follow_wordnet() -> None:
    tax = taxonomy()
    tabby = tax.classes[TABBY].wnid
    assert tabby in label_synsets("tabby cat", tax)
    assert tabby not in label_synsets("domestic cat", tax)
    assert near_match(label_synsets("domestic cat", tax), tabby, tax)  # the parent
    assert near_match(label_synsets("Persian cat", tax), tabby, tax)  # a sibling
    assert not near_match(label_synsets("school bus", tax), tabby, tax)
    assert label_concept("tabby OR school bus") == "tabby"


def test_heldout_auc_counts_photos_of_classes_under_the_label() -> None:
    tax = taxonomy()
    dogs = sorted(tax.classes_under(label_synsets("dog", tax)[0]))
    classes: list[int | None] = [dogs[0], dogs[1], dogs[2], TABBY, 500, 600, None]
    acts = np.array([3.0, 2.5, 2.0, 0.1, 0.0, 0.2, 9.0])
    auc, n = heldout_auc("dog", acts, classes, tax)
    assert n == 3 and auc == 1.0  # the unlabelled photo (None) counts on neither side
    assert heldout_auc("domestic cat", acts, classes, tax) == (0.2, 1)  # above one of five others
    assert heldout_auc("no such concept", acts, classes, tax) == (0.5, 0)


def test_most_correlated_picks_the_term_that_tracks_the_unit() -> None:
    pool = [{"dog": 0.9}, {"dog": 0.8}, {"cat": 0.9}, {"cat": 0.7}, {"car": 0.9}, {"dog": 0.2, "cat": 0.5}]
    acts = np.array([2.0, 1.8, 0.1, 0.0, 0.2, 0.6])
    assert most_correlated(pool, acts, {"dog": "Dog"}) == "Dog"
