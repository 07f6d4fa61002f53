"""Baseline labels: what a unit is called without running a single experiment.

Each baseline sees only what the agent sees before its first experiment, the unit's top
dataset exemplars and the blind describer's words about them, plus the unit source's vocabulary
(the concepts the world can express, which holds no answer). None reads the ground truth.

``one_shot`` (MILAN-like)
    The describer summarises the top-k exemplars once (``summarize``). The label is the first
    line or sentence of that summary that names a vocabulary concept (a summary opens with a
    header line, or with the common content), else the whole summary.
``frequent``
    The vocabulary concept named in the most exemplar descriptions (ties: the one named earlier in
    them); the label is that concept's label.
``random``
    A vocabulary concept drawn uniformly (seeded by the evaluation seed and the unit); a floor
    for every score.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aim_agent.eval.truth import ConceptTruth, mentions

if TYPE_CHECKING:
    from aim_agent.agent.config import RunConfig
    from aim_agent.system import System

#: the baselines' names (the keys of :data:`BASELINES` and of :func:`baseline_labels`)
ONE_SHOT, FREQUENT, RANDOM = "one_shot", "frequent", "random"
BASELINES: dict[str, str] = {
    ONE_SHOT: "one-shot exemplar summary (MILAN-like)",
    FREQUENT: "describer's most frequent concept",
    RANDOM: "random vocabulary label",
}
#: the baselines that read the describer's summary of the exemplars, and so spend its tokens
READS_SUMMARY: tuple[str, ...] = (ONE_SHOT,)
#: the baselines an evaluation's table of units shows beside the agent (the random one adds nothing to read)
SHOWN_PER_UNIT: tuple[str, ...] = (ONE_SHOT, FREQUENT)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def one_shot_label(summary: str, vocabulary: list[ConceptTruth]) -> str:
    """The first line or sentence of ``summary`` that names a vocabulary concept (else all of it)."""
    for part in _SENTENCES.split(summary):
        if part.strip() and mentions(part, vocabulary):
            return part.strip()
    return summary.strip()


def frequent_label(descriptions: list[str], vocabulary: list[ConceptTruth]) -> str:
    """The label of the concept named in the most descriptions; '' when none names any."""
    count: dict[str, int] = defaultdict(int)
    rank: dict[str, float] = defaultdict(float)
    by_key = {c.key: c for c in vocabulary}
    for text in descriptions:
        for order, (_, concept) in enumerate(mentions(text, vocabulary)):
            count[concept.key] += 1
            rank[concept.key] += order
    if not count:
        return ""
    best = min(count, key=lambda k: (-count[k], rank[k] / count[k], k))
    return by_key[best].label


def random_label(vocabulary: list[ConceptTruth], seed: int, unit: str) -> str:
    """A vocabulary concept's label, drawn by ``(seed, unit)``."""
    digest = int.from_bytes(hashlib.blake2b(unit.encode(), digest_size=8).digest(), "little")
    rng = np.random.default_rng([seed, digest])
    return vocabulary[int(rng.integers(len(vocabulary)))].label


@dataclass
class ExemplarView:
    """What the describer says about a unit's top exemplars, and what it cost."""

    descriptions: list[str]
    summary: str
    seconds: float
    tokens: int


def exemplar_view(system: System, config: RunConfig) -> ExemplarView:
    """Describe and summarise ``system``'s top ``config.exemplars_k`` exemplars (default 15, what a VLM
    reads) with the run's describer."""
    from aim_agent.agent.backends import UsageMeter
    from aim_agent.agent.runtime import build_describer
    from aim_agent.exemplars import exemplars_for_system
    from aim_agent.exemplars.engine import DEFAULT_K
    from aim_agent.images import ImageStore, use_store

    started = time.monotonic()
    meter = UsageMeter()
    describer = build_describer(config, meter)
    with use_store(ImageStore()):
        found = exemplars_for_system(system, k=config.exemplars_k or DEFAULT_K, dataset=config.exemplar_dataset,
                                     progress=False)
        descriptions = list(describer.describe(found.images)) if found.images else []
        summary = describer.summarize(found.images) if found.images else ""
    tokens = sum(call.input_tokens + call.output_tokens for call in meter.calls)
    return ExemplarView(descriptions=descriptions, summary=summary, seconds=time.monotonic() - started,
                        tokens=tokens)


def baseline_labels(view: ExemplarView, vocabulary: list[ConceptTruth], seed: int, unit: str) -> dict[str, str]:
    """Every baseline's label for one unit."""
    return {
        ONE_SHOT: one_shot_label(view.summary, vocabulary),
        FREQUENT: frequent_label(view.descriptions, vocabulary),
        RANDOM: random_label(vocabulary, seed, unit),
    }
