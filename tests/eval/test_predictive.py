"""``aim eval predictive`` bookkeeping: prompt generation, pooling, selection and scoring on a tiny vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from aim_agent.eval.predictive import (
    MethodScore,
    Prompts,
    Selection,
    UnitPrediction,
    pool_prompts,
    score_selection,
    sign_test,
    summary_rows,
)
from aim_agent.eval.prompt_writers import generate_prompts, predicted_score, select_prompts
from aim_agent.vocabulary import ConceptInfo, Vocabularies


class TinyVocabulary:
    """Three concepts; prompts name them by word, controls name none."""

    name = "tiny"
    words: ClassVar[dict[str, str]] = {"dog": "object:dog", "cat": "object:cat", "water": "background:water"}

    def members(self, term: str) -> frozenset[str]:
        return frozenset()

    def concept(self, key: str) -> ConceptInfo | None:
        return next((ConceptInfo(k, k.split(":")[0], w, (w,)) for w, k in self.words.items() if k == key), None)

    def concepts_in(self, text: str) -> list[ConceptInfo]:
        found = [(text.find(w), k) for w, k in self.words.items() if w in text]
        return [c for _, k in sorted(found) if (c := self.concept(k)) is not None]

    def annotator(self, root: Path) -> None:
        return None

    def concept_prompts(self, key: str, n: int) -> list[str]:
        word = key.split(":")[1]
        return [f"a {word} {i}" for i in range(n)]

    def control_prompts(self, avoid: Sequence[str], n: int) -> list[str]:
        return [f"a control {i}" for i in range(n)]


VOCAB = Vocabularies([TinyVocabulary()])


def test_generator_writes_positive_prompts_from_every_concept_of_the_label_and_neutral_ones_from_none() -> None:
    one = generate_prompts("dog", VOCAB, n=4)
    assert one.positive == ["a dog 0", "a dog 1", "a dog 2", "a dog 3"]
    assert one.neutral == ["a control 0", "a control 1", "a control 2", "a control 3"]
    both = generate_prompts("dog; cat", VOCAB, n=4)  # concepts taken in turn
    assert both.positive == ["a dog 0", "a cat 0", "a dog 1", "a cat 1"]
    unknown = generate_prompts("zebra stripes", VOCAB, n=4)  # nothing to draw: the label itself
    assert unknown.positive == ["zebra stripes"] and len(unknown.neutral) == 4


def test_pooling_keeps_every_method_prompt_once_in_order() -> None:
    a = Prompts(positive=["a dog 0", "a dog 1"], neutral=["a control 0"])
    b = Prompts(positive=["a cat 0", "a dog 1"], neutral=["a control 0", "a control 1"])
    assert pool_prompts([a, b]) == ["a dog 0", "a dog 1", "a control 0", "a cat 0", "a control 1"]


def test_selector_picks_prompts_naming_the_label_first_and_the_least_related_as_neutral() -> None:
    pool = ["a cat 0", "a dog 0", "a control 0", "a dog on water", "a dog 1", "a control 1", "a cat 1"]
    assert predicted_score("dog on water", "a dog on water", VOCAB) == 2
    picked = select_prompts("dog on water", pool, VOCAB, n=3)
    assert picked.positive[0] == "a dog on water"  # names both concepts
    assert set(picked.positive) == {"a dog on water", "a dog 0", "a dog 1"}
    assert not set(picked.positive) & set(picked.neutral) and len(picked.neutral) == 3
    assert all("dog" not in p for p in picked.neutral)
    assert select_prompts("dog on water", list(reversed(pool)), VOCAB, n=3).positive == picked.positive  # order-free


def test_score_is_the_mean_activation_of_the_picks_and_the_table_averages_units_per_layer() -> None:
    acts = {"p1": 4.0, "p2": 2.0, "n1": 1.0, "n2": 0.0}
    s = score_selection(Selection(positive=["p1", "p2"], neutral=["n1", "n2"]), "x", acts)
    assert (s.positive_mean, s.neutral_mean, s.difference) == (3.0, 0.5, 2.5)

    def unit(u: int, aim: float, exemplar: float, scale: float) -> UnitPrediction:
        return UnitPrediction("conv5", u, scale, {"aim": MethodScore("a", [], [], aim, 0.0),
                                                  "exemplar": MethodScore("e", [], [], exemplar, 0.0)})

    rows = {r["method"]: r for r in summary_rows([unit(0, 4.0, 2.0, 4.0), unit(1, 1.0, 3.0, 2.0)])}
    assert rows["aim"]["positive"] == 2.5 and rows["aim"]["difference"] == 2.5
    assert rows["aim"]["normalised_difference"] == 0.75  # (4/4 + 1/2) / 2
    versus = rows["aim"]["vs_exemplar"]
    assert (versus["wins"], versus["losses"], versus["gap_mean"]) == (1, 1, 0.0) and versus["sign_test_p"] == 1.0
    assert versus["gap_sd"] == pytest.approx(2.8284, abs=1e-4)  # gaps +2 and -2
    assert rows["exemplar"]["vs_exemplar"] is None


def test_the_sign_test_is_exact_and_two_sided() -> None:
    assert sign_test(10, 0) == pytest.approx(2 / 2**10)  # all ten units one way
    assert sign_test(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 2**10)  # 0.109: not convincing
    assert sign_test(2, 8) == sign_test(8, 2) and sign_test(3, 3) == 1.0
    assert sign_test(0, 0) is None  # every unit a tie: no evidence either way
