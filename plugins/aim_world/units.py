"""The shipped synthetic neurons as a unit source (hook ``aim_units``), with their known answers.

It sits above both the neurons (:mod:`aim_world.neurons`) and their ground truth
(:mod:`aim_world.truth`, which reads the neurons' concepts), so neither imports the other back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aim_agent.system import System
from aim_world.neurons import find_neuron, neuron_names, synthetic_system


class SyntheticNeurons:
    """The synthetic neurons as a unit source (hook ``aim_units``): ``--synthetic NAME_OR_INDEX``.

    Their names state their answer; the answer itself (``unit_label``) stays in the probe,
    which the agent, its sandbox and MCP clients never see.
    """

    name = "synthetic"
    description = "synthetic neurons computed from world scene graphs, with ground truth (docs/synthetic-neurons.md)"

    def unit_names(self) -> list[str]:
        return neuron_names()

    def system(self, unit: str | int) -> System:
        return synthetic_system(unit)

    # what `aim eval synthetic --set shipped` reads (aim_agent.eval.truth.EvaluableUnits)

    def eval_units(self, seed: int, n: int | None) -> list[str]:
        """All neurons in unit order; with ``n`` below their number, a sample of ``n`` drawn by ``seed``."""
        names = neuron_names()
        if n is None or n >= len(names):
            return names
        keep = np.random.default_rng(seed).choice(len(names), size=n, replace=False)
        return [names[i] for i in sorted(keep)]

    def ground_truth(self, unit: str) -> Any:
        from aim_world.truth import unit_truth

        return unit_truth(find_neuron(unit))

    def vocabulary(self) -> list[Any]:
        from aim_world.truth import vocabulary_concepts

        return list(vocabulary_concepts())

    def __repr__(self) -> str:
        return "SyntheticNeurons()"
