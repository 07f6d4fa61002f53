"""``aim bench imagenet``'s scoring: top-k and the tagger's scores from class probabilities."""

from __future__ import annotations

import numpy as np

from aim_imagenet.bench import score
from aim_imagenet.wordnet import taxonomy


def test_score_counts_top1_top5_and_the_taggers_parent_kinds() -> None:
    tax = taxonomy()
    tabby, beagle = tax.classes[281].wnid, tax.lookup("beagle")[0]
    probs = np.full((2, 1000), 0.1 / 998, dtype=np.float32)
    probs[0, 281] = 0.9  # right
    probs[1, 282] = 0.5  # a tiger cat for a beagle: wrong, and not in the top 5
    probs[1, [283, 284, 285, 286]] = 0.1
    got = score(probs, [tabby, beagle])
    assert got["top1"] == 0.5 and got["top5"] == 0.5
    assert got["tagger_true_class_named"] == 0.5
    assert got["tagger_kinds_include_parent"] == 0.5  # domestic cat for the tabby; no hound for the beagle
