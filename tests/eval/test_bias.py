"""``aim eval bias`` bookkeeping: scoring found biases against planted ones, the class-probability unit, and the
offline scientist's replicated sweeps on constructed units."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aim_agent.eval.bias import ClassProbability, learned, score
from aim_agent.eval.tasks import Finding, TaskQuestion
from aim_agent.system import LayerProbe, System

PLANTED = [
    {"cls": "boat", "feature": "background", "value": "water", "accuracy_with_feature": 1.0,
     "accuracy_without_feature": 0.1},
    {"cls": "car", "feature": "color", "value": "red", "accuracy_with_feature": 1.0,
     "accuracy_without_feature": 0.05},
    {"cls": "dog", "feature": "cooccurrence", "value": "leash", "accuracy_with_feature": 0.78,
     "accuracy_without_feature": 0.87},  # planted, not learned
]


def test_a_planted_bias_is_learned_when_accuracy_drops_without_its_feature() -> None:
    assert [learned(p) for p in PLANTED] == [True, True, False]
    assert not learned({"cls": "x", "value": "y"})  # nothing measured: not counted as learned


def test_recall_counts_learned_planted_biases_and_precision_counts_preferences() -> None:
    found = [
        Finding("boat", "background", "water", 0.98, 0.1),
        Finding("car", "companion", "strawberry", 0.6, 0.2),  # unplanted
        Finding("car", "color", "Red", 0.95, 0.1),  # matches despite the case
        Finding("fish", "background", "water", 0.1, 0.8, kind="suppressor"),  # not a preference
        Finding("horse", "companion", "leash", 0.9, 0.1),  # a planted value on another class: no match
    ]
    s = score(found, PLANTED)
    assert s.learned == ["boat: background=water", "car: color=red"]
    assert s.found_learned == s.learned and s.recall_learned == 1.0
    assert s.recall_all == round(2 / 3, 4)
    assert s.preferences == 4 and s.precision == 0.5
    assert [f.value for f in s.unplanted] == ["strawberry", "leash"]
    assert [f.cls for f in s.suppressors] == ["fish"]
    empty = score([], PLANTED)
    assert empty.recall_learned == 0.0 and empty.precision is None


class FixedLogits(LayerProbe):
    model_name, layer, num_units = "tiny", "fc", 3

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.tensor([[2.0, 0.0, -1.0]] * len(images))[:, :, None, None]


def test_class_probability_units_are_the_softmax_of_the_logits() -> None:
    probe = ClassProbability(FixedLogits(), ["a", "b", "c"])
    out = probe.forward([Image.new("RGB", (8, 8))] * 2)
    assert out.shape == (2, 3, 1, 1)
    assert torch.allclose(out.sum(dim=1), torch.ones(2, 1, 1))
    expected = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), dim=0)[0].item()
    assert System(probe, 0).activations([Image.new("RGB", (8, 8))]).activations[0] == pytest.approx(expected)
    assert probe.fingerprint().endswith(":softmax")


@dataclass
class Response:
    activations: np.ndarray


class PromptProbability:
    """P(class) from the prompt: ``base`` plus the weight of every word it names, clipped to [0, 1]."""

    def __init__(self, base: float, weights: dict[str, float]) -> None:
        self.base, self.weights = base, weights

    def activations(self, images: list[str]) -> Response:
        return Response(np.array([min(1.0, max(0.0, self.base + sum(w for k, w in self.weights.items()
                                                                    if f" {k} " in f" {p} ")))
                                  for p in images]))


def ask(cls: str, base: float, weights: dict[str, float]) -> TaskQuestion:
    return TaskQuestion(task="bias", system=PromptProbability(base, weights), generate=lambda p, seed: list(p),
                        classes=(cls,), target=cls)


def test_offline_scientist_finds_a_background_the_class_needs_and_a_colour_that_suppresses_it() -> None:
    from aim_world.scientist.tasks import OfflineTaskScientist

    answer = OfflineTaskScientist().answer(ask("boat", 0.1, {"water": 0.85, "purple": -0.5}))
    prefs = [(f.feature, f.value) for f in answer.findings if f.kind == "preference"]
    assert answer.verdict == "BIASED" and prefs == [("background", "water")]
    assert ("color", "purple") not in prefs
    uniform = OfflineTaskScientist().answer(ask("cup", 0.8, {}))
    assert uniform.verdict == "UNIFORM" and not uniform.findings


def test_a_finding_must_replicate_in_both_halves() -> None:
    from aim_world.scientist.bias import findings

    first = [{"water": 0.9, "grass": 0.1, "snow": 0.1}] * 2
    second_same = [{"water": 0.8, "grass": 0.2, "snow": 0.1}] * 2
    second_other = [{"water": 0.1, "grass": 0.9, "snow": 0.1}] * 2
    assert [f.value for f in findings("boat", "background", [first, second_same])] == ["water"]
    assert not [f for f in findings("boat", "background", [first, second_other]) if f.kind == "preference"]



def test_a_companion_preference_must_beat_the_class_alone() -> None:
    """A look-alike companion (the class recognised as well alone, other companions distracting) is no
    preference; a companion the class needs (recognised much less alone) is one; the control is no finding."""
    from aim_world.scientist.bias import ABSENT, findings

    look_alike = [{ABSENT: 0.93, "knife": 0.9, "pen": 0.4, "cup": 0.4, "leaf": 0.4}] * 2
    found = findings("guitar", "companion", [look_alike, look_alike])
    assert not [f for f in found if f.kind == "preference"]
    needed = [{ABSENT: 0.3, "leash": 0.9, "pen": 0.35, "cup": 0.3, "leaf": 0.3}] * 2
    found = findings("dog", "companion", [needed, needed])
    assert [(f.value, f.kind) for f in found] == [("leash", "preference")]
    alone_low = [{ABSENT: 0.05, "leash": 0.9, "pen": 0.9, "cup": 0.9, "leaf": 0.9}] * 2
    assert all(f.value != ABSENT for f in findings("dog", "companion", [alone_low, alone_low]))

def test_companions_read_off_the_exemplars_are_swept() -> None:
    """Objects named in more than one exemplar (however small) join the seeded companion draw; the class itself,
    and objects named once, do not."""
    from aim_world.scientist.bias import exemplar_companions, sweeps

    described = [
        "The highlighted region (the whole image) contains a pink cat (15% of the region); a beige kite (1% of "
        "the region); background of the plain scene: plain backdrop (84%).",
        "The highlighted region (the whole image) contains a black cat (12% of the region); a red kite (2% of the "
        "region); a yellow mailbox (3% of the region); background of the snow scene: snow (64%), sky (19%).",
        "The highlighted region (the whole image) contains a white cat (9% of the region); background of the "
        "room scene: wall (41%), floor (36%).",
    ]
    assert exemplar_companions("cat", described) == ["kite"]
    drawn = set(sweeps("cat", 0)["companion"])
    assert "kite" not in drawn  # (the seeded draw for cat happens not to hold it)
    assert set(sweeps("cat", 0, ["kite"])["companion"]) == drawn | {"kite"}
    assert "cat" not in sweeps("cat", 0, ["cat"])["companion"]


def test_the_task_scientists_never_import_the_answers() -> None:
    """The offline task scientist reads no planted bias, no pairing, no task object (only the question)."""
    root = Path(__file__).resolve().parents[2] / "plugins" / "aim_world" / "scientist"
    for name in ("spurious.py", "bias.py", "tasks.py"):
        tree = ast.parse((root / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not imported & {"aim_world.datasets", "aim_world.tasks", "aim_world.train", "aim_world.cnn"}, name
