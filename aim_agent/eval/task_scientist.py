"""A chat model answers ``aim eval spurious`` and ``aim eval bias`` questions (MAIA's two tasks).

:class:`ChatTaskScientist` is the :class:`~aim_agent.eval.tasks.TaskScientist` of every ``--backend`` that
names a chat model. Each question is one ordinary interpretation run (:func:`~aim_agent.agent.runner.run_interpret`:
the same LangGraph loop, tools or code mode, critic, budgets and run directory as ``aim interpret``) with

- the task's prompt as the run's task (:func:`task_text`: spurious names the classes and the training
  environments, never their pairings; bias names the target class),
- the question's unit (:attr:`TaskQuestion.system`, e.g. a class probability) as the run's unit and the
  question's image generator as the run's ``text2image`` (:class:`QuestionImages`),
- the question's exemplars as the run's ``dataset_exemplars`` (:func:`exemplars_tool`),
- the task's final-answer form (``RunConfig.answer``: :data:`~aim_agent.agent.prompts.ANSWER_FORMATS`).

The run's final reply is then read by :func:`parse_spurious` or :func:`parse_bias`. A reply that cannot be
read, or a run that ends without one, gives the answer ``ERROR`` with the reason and the run directory (never a
default verdict). The run never gets the :class:`~aim_agent.eval.tasks.EvalTask`: only what the question holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from aim_agent.agent.backends import BackendSpec, ModelCallError, make_chat_model
from aim_agent.agent.config import RunConfig
from aim_agent.agent.llm_scientist import section
from aim_agent.agent.prompts import bias_task, spurious_task
from aim_agent.agent.schema import Mode
from aim_agent.contracts import Finding, Generate, Observation, TaskAnswer, TaskQuestion
from aim_agent.providers import Generated
from aim_agent.system import System
from aim_agent.tools.base import ToolContext, ToolSpec, tool
from aim_agent.tools.core import ActivationsOutput, ExemplarsInput
from aim_agent.vocabulary import Vocabularies, installed_vocabularies

#: the ``system_factory`` of a task run: its unit is handed in by the evaluation, in process
GIVEN_SYSTEM = "aim_agent.eval.task_scientist:question_system"
#: measured images kept as evidence for the evaluation's page (the run directory keeps them all)
EVIDENCE_IMAGES = 200
Progress = Callable[[str], None]


class AnswerError(ValueError):
    """A task run's final reply could not be read as the task's answer."""


def question_system() -> System:
    """The unit of a task run: given in process by ``aim eval``, so a stopped task run cannot be resumed."""
    raise RuntimeError("this run's unit was handed in by `aim eval spurious|bias` and lived only in that process, so "
                       "the run cannot be resumed: run the evaluation again (its other units' runs are kept)")


# --------------------------------------------------------------------------------------------- the run's pieces


def task_text(question: TaskQuestion) -> str:
    """MAIA's task prompt for ``question``: spurious with the classes and the training environments (never
    their pairings), bias with the target class."""
    if question.task == "spurious":
        return spurious_task(list(question.classes), list(question.domain))
    if question.task == "bias":
        if not question.target:
            raise ValueError("a bias question needs its target class (TaskQuestion.target)")
        return bias_task(question.target)
    raise ValueError(f"unknown task {question.task!r}; a chat-model scientist answers: spurious, bias")


@dataclass
class QuestionImages:
    """The question's image generator as the run's text-to-image provider (the ``text2image`` tool calls it).
    It draws at the generator's own size."""

    draw: Generate
    name: str = "task question"

    def generate(self, prompts: list[str], *, size: int = 224, seed: int = 0) -> list[Generated]:
        images = self.draw(list(prompts), seed)
        return [Generated(image=image, prompt=prompt) for prompt, image in zip(prompts, images, strict=True)]


def exemplars_tool(question: TaskQuestion) -> ToolSpec:
    """``dataset_exemplars`` of the run: the question's exemplars (spurious: the unit's top images of the
    unbalanced validation set; bias: the class's most probable images of the unbiased test split)."""
    images, activations = list(question.exemplars), list(question.exemplar_activations)

    @tool("dataset_exemplars", positional=("k",), idempotent=True, needs_system=True)
    def dataset_exemplars(ctx: ToolContext, args: ExemplarsInput) -> ActivationsOutput:
        """The unit's top-activating images of the task's image set, highest first (a class probability: the
        images the classifier finds most like the class).

        Returns the activations and the images (for a unit with a spatial map, overlays in which the region where
        the unit fires is bright and outlined; a class probability has none: the whole image)."""
        return ActivationsOutput(activations=activations[: args.k], images=images[: args.k])

    return dataset_exemplars


# --------------------------------------------------------------------------------------------- reading answers


def _word(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", text.lower()).strip()


def _class_named(text: str, classes: Sequence[str]) -> str | None:
    """The one class ``text`` names (a class's name, or its plural), or None."""
    words = f" {_word(text)} "
    named = [c for c in classes if f" {_word(c)} " in words or f" {_word(c)}s " in words or f" {_word(c)}es " in words]
    return named[0] if len(named) == 1 else None


def parse_spurious(text: str, classes: Sequence[str]) -> TaskAnswer:
    """``[REASONING]``, ``[LABEL]: SELECTIVE|SPURIOUS`` and (SELECTIVE) ``[CLASS]``; :class:`AnswerError` when the
    label is missing or says neither (or both), or when the class is not one of ``classes``."""
    label = section(text, "LABEL")
    if label is None:
        raise AnswerError(f"no [LABEL]: SELECTIVE or SPURIOUS line in the final answer; it began: {text[:200]!r}")
    said = {v for v in ("SELECTIVE", "SPURIOUS") if re.search(rf"\b{v}\b", label, re.I)}
    if len(said) != 1:
        raise AnswerError(f"the [LABEL] line must say SELECTIVE or SPURIOUS, not {label[:120]!r}")
    verdict = said.pop()
    reasoning = section(text, "REASONING") or ""
    selective_for = None
    if verdict == "SELECTIVE":
        named = section(text, "CLASS") or re.sub(r"(?i)\bselective\b", "", label).strip(" :-()")
        if named:
            selective_for = _class_named(named, classes)
            if selective_for is None:
                raise AnswerError(f"the class {named[:80]!r} is not one of the classes: {', '.join(classes)}")
    return TaskAnswer(verdict=verdict, reasoning=reasoning, selective_for=selective_for)


#: the features a bias is about, by the kind of concept its value is (aim_agent.vocabulary.ConceptInfo.kind)
FEATURE_OF_KIND = {"color": "color", "background": "background", "region": "background", "object": "companion",
                   "texture": "texture"}
_NUMBER = r"(-?\d*\.?\d+)"
_PREFERENCE = re.compile(r"^(?P<cls>.+?)\s+(?:is|are)\s+(?:only\s+)?recogni[sz]ed\s+with\s+(?P<feature>[^=]+?)\s*=\s*"
                         r"(?P<value>[^(]+?)\s+and\s+under-?\s*recogni[sz]ed\s+without\s+it\b(?P<rest>.*)$", re.I)
_SUPPRESSOR = re.compile(r"^(?P<cls>.+?)\s+(?:is|are)\s+under-?\s*recogni[sz]ed\s+with\s+(?P<feature>[^=]+?)\s*=\s*"
                         r"(?P<value>[^(]+?)\s*(?P<rest>\(.*)?$", re.I)


def canonical(feature: str, value: str, vocabulary: Vocabularies) -> tuple[str, str]:
    """A bias's feature and value in the vocabularies' words, so that it can be scored: the value is the first
    concept the vocabularies find in it ("a red colour" -> red) and the feature follows from that concept's
    kind (:data:`FEATURE_OF_KIND`); words no vocabulary knows are kept, lower-cased."""
    found = [c for c in vocabulary.concepts_in(value) if c.kind != "category"]
    feature = _word(feature).replace("colour", "color")
    if not found:
        return feature, _word(value)
    return FEATURE_OF_KIND.get(found[0].kind, feature), found[0].name


def _numbers(rest: str) -> tuple[float | None, float | None]:
    with_m = re.search(rf"\bwith\s*:?\s*{_NUMBER}", rest, re.I)
    other = re.search(rf"\b(?:without|typical)\s*:?\s*{_NUMBER}", rest, re.I)
    return (float(with_m.group(1)) if with_m else None, float(other.group(1)) if other else None)


def parse_bias(text: str, target: str, vocabulary: Vocabularies | None = None) -> TaskAnswer:
    """The ``[BIAS]`` lines as :class:`Finding` s of class ``target`` (feature and value through
    :func:`canonical`); ``[BIAS]: none`` is the answer UNIFORM. :class:`AnswerError` when there is no [BIAS]
    line, when a line has neither form, or when it is about another class."""
    vocabulary = vocabulary if vocabulary is not None else installed_vocabularies()
    lines = [m.group(1).strip() for m in re.finditer(r"^\s*\[BIAS\]\s*:?\s*(.+)$", text, re.M | re.I)]
    if not lines:
        raise AnswerError(f"no [BIAS] line in the final answer (write '[BIAS]: none' when there is no bias); it "
                          f"began: {text[:200]!r}")
    findings: list[Finding] = []
    for line in lines:
        if _word(line) in ("none", "no bias", "no biases"):
            continue
        m = _PREFERENCE.match(line)
        kind = "preference"
        if m is None:
            m, kind = _SUPPRESSOR.match(line), "suppressor"
        if m is None:
            raise AnswerError(f"the line [BIAS]: {line[:160]!r} has neither form: '<class> is recognised with "
                              "<feature> = <value> and under-recognised without it' or '<class> is "
                              "under-recognised with <feature> = <value>'")
        if _class_named(m.group("cls"), [target]) is None:
            raise AnswerError(f"the line [BIAS]: {line[:160]!r} is about {m.group('cls')!r}, but this unit is the "
                              f"probability of {target!r}")
        feature, value = canonical(m.group("feature"), m.group("value"), vocabulary)
        with_value, other = _numbers(m.group("rest") or "")
        findings.append(Finding(target, feature, value, with_value, other, kind=kind,  # type: ignore[arg-type]
                                description=line))
    return TaskAnswer(verdict="BIASED" if findings else "UNIFORM", reasoning=section(text, "REASONING") or "",
                      findings=findings)


def read_answer(question: TaskQuestion, text: str) -> TaskAnswer:
    """The final reply of a task run as the question's answer (:class:`AnswerError` when it cannot be read)."""
    if question.task == "spurious":
        return parse_spurious(text, question.classes)
    return parse_bias(text, question.target or "")


# --------------------------------------------------------------------------------------------- the scientist


class ChatTaskScientist:
    """A task scientist over a chat model: one interpretation run per question, under ``runs_dir``.

    ``settings`` are further :class:`RunConfig` fields of every run (``describer``, ``editor``, ``plugins``,
    ``react_steps``, ...)."""

    def __init__(
        self,
        backend: BackendSpec,
        *,
        runs_dir: Path,
        mode: Mode = "tools",
        max_rounds: int = 10,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        critic_backend: BackendSpec | None = None,
        settings: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> None:
        if backend.offline:
            raise ValueError("the offline task scientist is the world plugin's (hook aim_task_scientists), "
                             "not a chat model")
        self.backend = backend
        self.name = backend.label()
        self.runs_dir = Path(runs_dir)
        self.run_settings: dict[str, Any] = dict(settings or {})
        self.run_settings.update(backend=backend, critic_backend=critic_backend, mode=mode, max_rounds=max_rounds,
                                 max_tokens=max_tokens, max_cost=max_cost)
        # bad settings, a missing key or package fail now, not after the evaluation's first steps
        RunConfig(**self.run_settings, system_factory=GIVEN_SYSTEM)
        make_chat_model(backend)  # builds the client only: no request is sent
        self.progress = progress

    def run_id(self, question: TaskQuestion) -> str:
        """``spurious-unit17`` / ``bias-boat``, with ``-2``, ``-3``, ... when that run exists already."""
        what = f"unit{question.system.unit}" if question.task == "spurious" else str(question.target)
        base = f"{question.task}-" + ("".join(c if c.isalnum() or c in "-_." else "-" for c in what)[:60] or "unit")
        run_id, n = base, 1
        while (self.runs_dir / run_id).exists():
            n += 1
            run_id = f"{base}-{n}"
        return run_id

    def config(self, question: TaskQuestion) -> RunConfig:
        return RunConfig(**{**self.run_settings, "system_factory": GIVEN_SYSTEM, "task": task_text(question),
                            "answer": question.task, "run_id": self.run_id(question),
                            "runs_dir": str(self.runs_dir)})

    def answer(self, question: TaskQuestion) -> TaskAnswer:
        """Run the task on the question's unit and read the final reply (``ERROR`` with the reason when it
        cannot be read, or when the model failed for good)."""
        from aim_agent.agent.runner import run_interpret

        config = self.config(question)
        run_dir = self.runs_dir / str(config.run_id)
        try:
            result = run_interpret(config, system=question.system, text2image=QuestionImages(question.generate),
                                   tools=[exemplars_tool(question)], progress=self.progress)
        except ModelCallError as exc:  # the provider refused or kept failing: this unit has no answer
            return error_answer(f"the model call failed: {exc}", run_dir)
        conclusion = result.conclusion
        text = conclusion.answer_text if conclusion is not None else None
        if text is None:
            why = result.forced or result.record.error or "the run ended without a conclusion"
            return error_answer(f"no final answer was given ({why})", run_dir)
        try:
            answer = read_answer(question, text)
        except AnswerError as exc:
            return error_answer(str(exc), run_dir)
        answer.evidence = evidence(result.run_dir, result.record.rounds)
        answer.run_dir = str(run_dir)
        return answer


def error_answer(reason: str, run_dir: Path) -> TaskAnswer:
    """The answer of a unit whose run gave none that can be read: ``ERROR``, the reason, where the run is."""
    return TaskAnswer(verdict="ERROR", reasoning=f"{reason} (transcript: {run_dir / 'report.html'})",
                      run_dir=str(run_dir))


def evidence(run_dir: Path, rounds: Sequence[Any]) -> list[Observation]:
    """Every activation the run measured, with its image (the first :data:`EVIDENCE_IMAGES`) and prompt."""
    out: list[Observation] = []
    for rd in rounds:
        for m in rd.measurements:
            path = run_dir / "images" / f"{m.image_id}.png"
            image = None
            if len(out) < EVIDENCE_IMAGES and path.exists():
                with Image.open(path) as im:
                    image = im.convert("RGB")
            out.append(Observation(prompt=m.prompt or m.source_prompt, activation=m.activation, image=image))
    return out
