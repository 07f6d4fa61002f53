"""Evidence: the images of past experiments as records of what each shows and how strongly the unit fired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from aim_agent.agent.schema import Observation
from aim_world.scientist.parsing import Parsed, parse_text, prompt_features
from aim_world.scientist.scene_edits import apply_edit, is_edit_instruction


@dataclass(frozen=True)
class Record:
    """One image of an experiment: what it contains (features), the activation, its context."""

    features: frozenset[str]
    activation: float
    round: int
    background: str | None
    pair: int | None = None  # index of the original when this image is an edit of it


@lru_cache(maxsize=65536)
def _parsed(prompt: str) -> Parsed:
    """The parsed scene of a prompt, remembered; shared, so never changed (edits copy it)."""
    return parse_text(prompt)


def evidence_from(observations: Sequence[Observation]) -> list[Record]:
    """Records from every successful observation that pairs prompts with activations.

    A prompt is a scene ("a red dog on grass"), an edit instruction following its original
    (``edit_images`` interleaves them), or both in one string ("a red dog on grass | edit:
    replace the dog with a cat").
    """
    records: list[Record] = []
    for obs in observations:
        if not obs.activations or len(obs.prompts) != len(obs.activations):
            continue  # (a failed experiment's measurements still count: they were measured)
        originals: dict[str, int] = {}
        last: tuple[Parsed, int] | None = None
        for prompt, act in zip(obs.prompts, obs.activations, strict=True):
            base, _, instruction = prompt.partition(" | edit: ")
            if not instruction and is_edit_instruction(prompt):
                base, instruction = "", prompt
            pair: int | None = None
            if instruction:
                source = (_parsed(base), originals.get(base)) if base else last
                if source is None:
                    continue
                scene, pair = apply_edit(source[0], instruction), source[1]
            else:
                scene = _parsed(prompt)
            if scene is None or not scene.concepts():
                continue
            if not instruction:
                originals[prompt] = len(records)
                last = (scene, len(records))
            bg = scene.backgrounds[0] if scene.backgrounds else "plain"
            features = scene.features() if instruction else prompt_features(prompt)
            records.append(Record(features, float(act), obs.round, bg, pair))
    return records
