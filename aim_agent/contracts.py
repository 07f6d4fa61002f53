"""The plugin contract: the types that AIM's hooks promise (:mod:`aim_agent.hookspecs`).

What a plugin hands over through a hook is one of these: a model loader and the model it loads
(``aim_model_loaders``), a unit source (``aim_units``), a scientist factory (``aim_scientists``),
a concept vocabulary (``aim_vocabularies``), an evaluation task and its scientist
(``aim_eval_tasks``, ``aim_task_scientists``), a command (``aim_cli_commands``) or a benchmark
(``aim_benchmarks``). Tools (``aim_tools``) are :class:`aim_agent.tools.base.ToolSpec` objects made
with ``@tool``, and providers are the protocols of :mod:`aim_agent.providers`.

This module sits below everything that uses these types: it imports only the data layer
(:mod:`aim_agent.system`), so the hooks, the plugin manager and every block can name them
without an import loop. The usual homes re-export them (``aim_agent.models.base.ModelLoader``,
``aim_agent.plugins.UnitSource``, ``aim_agent.vocabulary.Vocabulary``,
``aim_agent.eval.tasks.EvalTask``), so plugins may import them from either place.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from aim_agent.system import System


# -- models (hook aim_model_loaders) ---------------------------------------------------------------


@dataclass
class LoadedModel:
    """A vision model ready for probing.

    ``preprocess`` turns PIL images into the input batch; ``run`` calls the module on that
    batch (transformers models want ``pixel_values=``); ``prefix_tokens`` is how many leading
    tokens (CLS, registers) a token layer carries before its patch grid.
    """

    name: str
    module: torch.nn.Module
    preprocess: Callable[[Sequence[Image.Image]], torch.Tensor]
    input_size: int
    fingerprint: str
    run: Callable[[torch.nn.Module, torch.Tensor], Any] = field(default=lambda m, x: m(x))
    prefix_tokens: int = 1
    labels: list[str] | None = None
    source: str = ""


@runtime_checkable
class ModelLoader(Protocol):
    """A way to load models. ``can_load`` must be cheap and never raise."""

    name: str

    def can_load(self, spec: str) -> bool: ...

    def load(self, spec: str) -> LoadedModel: ...

    def where_looked(self, spec: str) -> str:
        """One line: where this loader looked for ``spec`` and how a user provides it."""
        ...


# -- units, scientists, commands, benchmarks (hooks aim_units, aim_scientists, aim_cli_commands, aim_benchmarks)


@runtime_checkable
class ScientistFactory(Protocol):
    """A scientist that needs no chat model, by name (hook ``aim_scientists``)."""

    name: str

    def make(self, config: Any, runtime: Any) -> Any:
        """The scientist (an :class:`aim_agent.agent.schema.Scientist`) for one run: ``config`` is the run's
        :class:`~aim_agent.agent.config.RunConfig`, ``runtime`` its ``AgentRuntime`` (tools, run folder, meter)."""
        ...


@runtime_checkable
class UnitSource(Protocol):
    """Named units that are not a model layer, e.g. synthetic neurons with known answers (hook ``aim_units``).

    ``system`` returns a :class:`~aim_agent.system.System` whose probe may know each unit's
    ground truth (``unit_label``); the agent, its sandbox and MCP clients never see the probe.
    """

    name: str
    description: str

    def unit_names(self) -> list[str]: ...

    def system(self, unit: str | int) -> System: ...


@runtime_checkable
class CliCommand(Protocol):
    """An ``aim NAME`` command (hook ``aim_cli_commands``); a module with these attributes will do.

    It may also have ``help``: the one-line help that ``aim --help`` lists without calling
    ``register`` (without it, ``aim --help`` registers the command to read its help).
    """

    name: str

    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


@runtime_checkable
class Benchmark(Protocol):
    """An ``aim bench NAME`` benchmark (hook ``aim_benchmarks``); a module with these attributes will do."""

    name: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> dict[str, Any]: ...


# -- concept vocabularies (hook aim_vocabularies) --------------------------------------------------


@dataclass(frozen=True)
class ConceptInfo:
    """One concept of a vocabulary: ``key`` is ``kind:name`` (``object:dog``, ``color:red``, ``region:sky``).

    ``words`` are the ways a label may name it ("dog", "puppy"; "stripes", "striped"); ``category`` is
    the broader concept it belongs to, if any ("animal"), with the words that name that category.
    """

    key: str
    kind: str
    name: str
    words: tuple[str, ...] = ()
    category: str | None = None
    category_words: tuple[str, ...] = ()


@dataclass
class Annotation:
    """Exact concept masks of one image, compactly: every pixel holds one *atom* (an object, a background
    part), and every atom belongs to several concepts (``object:dog``, ``color:brown``, ``texture:dots``).

    ``labels`` is ``(S, S)`` int (an atom index, -1 for none); ``atoms[i]`` lists the indices (into the
    annotator's :attr:`ConceptAnnotator.concepts`) of the concepts atom ``i`` belongs to.
    """

    labels: np.ndarray
    atoms: list[tuple[int, ...]]

    def masks(self) -> dict[int, np.ndarray]:
        """Concept index -> boolean ``(S, S)`` mask, for every concept with at least one pixel."""
        out: dict[int, np.ndarray] = {}
        for atom, concepts in enumerate(self.atoms):
            where = self.labels == atom
            if not where.any():
                continue
            for c in concepts:
                out[c] = out[c] | where if c in out else where
        return out


@runtime_checkable
class ConceptAnnotator(Protocol):
    """Exact masks for the images of one dataset (a folder): what ``aim dissect`` needs."""

    #: every concept an image of the dataset may hold
    concepts: list[ConceptInfo]
    #: side of the masks, in pixels
    size: int

    def fingerprint(self) -> str:
        """Changes whenever the masks could change (part of the dissection cache key)."""
        ...

    def annotate(self, file: str) -> Annotation | None:
        """The masks of the image at ``file`` (relative to the dataset root), or None when unknown."""
        ...


@runtime_checkable
class Vocabulary(Protocol):
    """What a plugin knows about concept words (hook ``aim_vocabularies``)."""

    name: str

    def members(self, term: str) -> frozenset[str]:
        """The narrower words a broader ``term`` covers ("animal" or "animals" -> dog, frog, ...); empty when
        ``term`` is not a broader word of this vocabulary."""
        ...

    def concepts_in(self, text: str) -> list[ConceptInfo]:
        """The concepts a text (a description, a label) names, in order, without repeats."""
        ...

    def concept(self, key: str) -> ConceptInfo | None:
        """The concept ``key`` (``object:dog``), or None when this vocabulary does not know it."""
        ...

    def annotator(self, root: Path) -> ConceptAnnotator | None:
        """Exact concept masks for the dataset at ``root``, or None when this vocabulary cannot annotate it."""
        ...

    def concept_prompts(self, key: str, n: int) -> list[str]:
        """``n`` text-to-image prompts that show concept ``key`` alone, in varied contexts."""
        ...

    def control_prompts(self, avoid: Sequence[str], n: int) -> list[str]:
        """``n`` prompts of varied scenes that show none of the concepts ``avoid`` (keys)."""
        ...


@runtime_checkable
class ConceptListing(Protocol):
    """A vocabulary that can list its concepts (optional: the render dissection draws every one of them)."""

    def concepts(self) -> Sequence[ConceptInfo]:
        """Every concept :meth:`Vocabulary.concept_prompts` can show alone."""
        ...


# -- model-level evaluation tasks (hooks aim_eval_tasks, aim_task_scientists) ---------------------


TaskName = Literal["spurious", "bias"]
Generate = Callable[[list[str], int], list["Image.Image"]]


@dataclass
class LabelledImages:
    """Images of one split with their class labels."""

    images: list[Image.Image]
    labels: list[str]


@runtime_checkable
class EvalTask(Protocol):
    """One model-level task a plugin offers (hook ``aim_eval_tasks``)."""

    #: ``spurious`` or ``bias``
    name: str
    #: model spec, as ``aim layers`` takes it
    model: str
    #: the class names, in the model's output order
    classes: tuple[str, ...]
    #: spurious: the environments of the training domain, which a scientist may render (not their pairings)
    domain: tuple[str, ...]
    #: the layer whose units are the model's final features (spurious), and the logits layer
    feature_layer: str
    logits_layer: str

    def images(self, split: str, n: int, seed: int) -> LabelledImages:
        """``n`` labelled images of ``split``: spurious ``validation`` (unbalanced, like train), ``test``
        (shifted), ``balanced``; bias ``test``."""
        ...

    def truth(self) -> dict[str, Any]:
        """The held-out answer; read by the evaluator after the scientists concluded."""
        ...


@dataclass
class Observation:
    """One measured image: the prompt (or edit) that made it and the unit's response."""

    prompt: str
    activation: float
    image: Image.Image | None = None


@dataclass
class Finding:
    """One bias of class ``cls`` about ``value`` of a ``feature`` (background, colour, companion object).

    ``kind`` ``preference``: ``cls`` is recognised with the value and under-recognised without it;
    ``suppressor``: ``cls`` is under-recognised with the value.
    """

    cls: str
    feature: str
    value: str
    with_value: float | None  # mean class probability with the value (None: a VLM did not say)
    without_value: float | None  # ... without it (preference: the other values' mean; suppressor: their median)
    kind: Literal["preference", "suppressor"] = "preference"
    description: str = ""


@dataclass
class TaskQuestion:
    """What a scientist gets for one unit."""

    task: TaskName
    system: System
    generate: Generate  # prompts, seed -> images
    classes: tuple[str, ...]
    domain: tuple[str, ...] = ()
    target: str | None = None  # bias: the class whose probability the unit is
    exemplars: list[Image.Image] = field(default_factory=list)
    exemplar_activations: list[float] = field(default_factory=list)  # the unit's activation on each exemplar


@dataclass
class TaskAnswer:
    """A scientist's answer: spurious ``SELECTIVE``/``SPURIOUS``; bias ``BIASED``/``UNIFORM`` with findings;
    ``ERROR`` (with the reason as ``reasoning``) when a chat model's run gave no answer that could be read."""

    verdict: str
    reasoning: str
    selective_for: str | None = None
    findings: list[Finding] = field(default_factory=list)
    evidence: list[Observation] = field(default_factory=list)
    run_dir: str | None = None  # the run behind the answer (result.json, report.html), for chat-model scientists


@runtime_checkable
class TaskScientist(Protocol):
    """Answers task questions (hook ``aim_task_scientists``); ``name`` is the ``--backend`` that picks it."""

    name: str

    def answer(self, question: TaskQuestion) -> TaskAnswer:
        """Run experiments on ``question.system`` and conclude."""
        ...
