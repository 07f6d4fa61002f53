"""``aim eval spurious`` bookkeeping: ℓ1 selection, the rows of Table 2 on constructed features, the baseline's
keep rule, and the offline scientist's verdicts on constructed units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from aim_agent.eval.spurious import Split, exemplar_keeps, l1_top, table_rows
from aim_agent.eval.tasks import TaskQuestion


def shifted_problem(seed: int = 0) -> tuple[Split, Split, Split]:
    """4 classes; columns 0-3: each the class, noisily, everywhere ('core'); columns 4-7: each an environment,
    which is the class's own 95% of the time in validation and never in test ('spurious'); 8-19: noise."""
    rng = np.random.default_rng(seed)

    def split(n: int, p_own: float) -> Split:
        y = rng.integers(0, 4, n)
        env = np.where(rng.random(n) < p_own, y, (y + rng.integers(1, 4, n)) % 4)
        x = rng.normal(0, 1, (n, 20))
        x[np.arange(n), y] += 1.2  # core: weak but stable
        x[np.arange(n), 4 + env] += 4.0  # environment: strong
        return Split(x, y)

    return split(800, 0.95), split(400, 0.0), split(160, 0.25)


def test_l1_top_finds_the_informative_units_and_bisects_to_k() -> None:
    validation, _, _ = shifted_problem()
    units, model = l1_top(validation.x, validation.y, 4)
    assert len(units) == 4 and set(units) <= set(range(8))  # never a pure-noise column
    assert model.units == units
    with pytest.raises(ValueError, match="k must be between"):
        l1_top(validation.x, validation.y, 0)


def test_rows_follow_table_2_and_kept_core_units_beat_l1_at_the_same_sparsity_under_shift() -> None:
    validation, test, balanced = shifted_problem()
    top = list(range(8))
    rows = table_rows(validation, test, balanced, top, {"aim": [0, 1, 2, 3], "exemplar-only": []},
                      original=0.3, draws=20)
    by = {r.method: r for r in rows}
    assert [r.method for r in rows] == [
        "original model (all units, its own head)", "ℓ1 top 8", "random 4 of the top 8 (20 draws)",
        "ℓ1 top 4 (AIM's sparsity)", "aim (kept units, unregularised)",
        "exemplar-only (kept units, unregularised)", "ℓ1 top 4, balanced set"]
    assert by["ℓ1 top 8"].units == 8 and by["random 4 of the top 8 (20 draws)"].sd is not None
    assert by["exemplar-only (kept units, unregularised)"].units == 0  # nothing kept: majority class
    assert 0.15 <= by["exemplar-only (kept units, unregularised)"].accuracy <= 0.35
    # the environment columns carry validation but not the shifted test; the core ones carry both
    assert by["aim (kept units, unregularised)"].accuracy > by["ℓ1 top 4 (AIM's sparsity)"].accuracy + 0.2
    assert by["ℓ1 top 4, balanced set"].balanced


def test_the_exemplar_baseline_keeps_units_whose_summary_names_one_class_and_no_environment() -> None:
    classes, envs = ("dog", "cat", "bird", "cow"), ("beach", "snow", "grass", "desert")
    assert exemplar_keeps("Dogs, seen from the side.", classes, envs)
    assert not exemplar_keeps("Dogs on a beach.", classes, envs)
    assert not exemplar_keeps("Dogs and cats.", classes, envs)
    assert not exemplar_keeps("Snow.", classes, envs)


@dataclass
class Response:
    activations: np.ndarray


class PromptUnit:
    """A unit whose response to an image (here: a prompt and its render seed) is the sum of the weights of the
    words the prompt names, plus render noise of standard deviation ``noise`` (seeded by prompt and render)."""

    def __init__(self, weights: dict[str, float], noise: float = 0.0) -> None:
        self.weights, self.noise = weights, noise

    def activations(self, images: list[tuple[str, int]]) -> Response:
        def one(prompt: str, seed: int) -> float:
            jitter = np.random.default_rng([seed, *prompt.encode()]).normal(0, self.noise)
            return sum(w for word, w in self.weights.items() if word in prompt) + float(jitter)

        return Response(np.array([one(p, seed) for p, seed in images]))


def ask(weights: dict[str, float], noise: float = 0.0) -> TaskQuestion:
    return TaskQuestion(task="spurious", system=PromptUnit(weights, noise),  # type: ignore[arg-type]
                        generate=lambda prompts, seed: [(p, seed) for p in prompts],  # type: ignore[misc]
                        classes=("dog", "cat", "bird", "cow"), domain=("beach", "snow", "grass", "desert"))


@pytest.mark.parametrize(("weights", "noise", "verdict"), [
    ({"dog": 3.0}, 0.5, "SELECTIVE"),  # one class, every environment, far beyond the render noise
    ({"dog": 3.0, "beach": 0.2}, 0.5, "SELECTIVE"),  # a little context does not make it spurious
    ({"beach": 3.0}, 0.5, "SPURIOUS"),  # the environment alone
    ({"dog": 3.0, "cat": 2.9}, 0.5, "SPURIOUS"),  # two classes the renders cannot tell apart
    ({"dog": 0.3}, 1.0, "SPURIOUS"),  # a class effect smaller than the render noise
    ({"dog": 0.3, "dog on beach": 3.0}, 0.5, "SPURIOUS"),  # the class on one environment only
    ({"dog": 1.0, "a snow": 3.0}, 0.1, "SPURIOUS"),  # the bare snow drives it more than a dog there
])
def test_offline_scientist_applies_maias_criteria(weights: dict[str, float], noise: float, verdict: str) -> None:
    from aim_world.scientist.tasks import OfflineTaskScientist

    answer = OfflineTaskScientist().answer(ask(weights, noise))
    assert answer.verdict == verdict, answer.reasoning
    assert answer.evidence and all(o.prompt for o in answer.evidence)
    if verdict == "SELECTIVE":
        assert answer.selective_for == "dog"


def test_the_margin_a_class_needs_grows_with_the_render_spread() -> None:
    from aim_world.scientist.spurious import Grid, judge

    classes, envs = ("dog", "cat"), ("beach", "snow")

    def grid(spread: float) -> Grid:  # dog 1.0 above cat everywhere; renders differ by +-spread
        cells = {(c, e): [base - spread, base + spread] for e in envs for c, base in (("dog", 2.0), ("cat", 1.0))}
        return Grid(classes, envs, cells, {e: [-spread, spread] for e in envs})

    assert judge(grid(0.1)).verdict == "SELECTIVE"
    assert judge(grid(2.0)).verdict == "SPURIOUS"  # the same means, but within the noise of two renders


def test_world_tasks_draw_labelled_splits_and_keep_their_answers_apart() -> None:
    from collections import Counter

    from aim_agent.eval.tasks import eval_task

    task = eval_task("spurious")
    assert task.model == "world-cnn-spawrious" and set(task.domain) == {"beach", "snow", "grass", "desert"}
    balanced = task.images("balanced", 16, seed=0)
    assert len(balanced.images) == 16 and Counter(balanced.labels) == {c: 4 for c in task.classes}
    with pytest.raises(ValueError, match="valid splits: validation, test, balanced"):
        task.images("train", 4, seed=0)
    planted = eval_task("bias").truth()["planted"]
    assert {p["cls"] for p in planted} == {"boat", "car", "dog"}
    assert all(p["accuracy_with_feature"] is not None for p in planted)
    # the shipped model's reliance on each feature is measured on counterfactual twins (aim world bias-twins)
    assert all(p["measured_on"].endswith("counterfactual twins") for p in planted)
    with pytest.raises(LookupError, match="no evaluation task 'nope'"):
        eval_task("nope")
