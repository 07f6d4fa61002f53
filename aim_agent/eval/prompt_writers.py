"""The predictive evaluation's Prompt Generator and Prompt Selector (MAIA Section 4.1, Fig. 3).

A :class:`PromptWriter` does both jobs for one label at a time, and sees nothing but the label (and, to select,
the pooled prompts): never the unit, an activation or another method's label.

- :class:`VocabularyPromptWriter` (``offline``): deterministic, through the installed concept vocabularies
  (hook ``aim_vocabularies``). It writes prompts that show the concepts the label names (taken in turn) and
  controls that show none of them, and ranks pooled prompts by how many of the label's concepts they name.
- :class:`ChatPromptWriter` (a chat model, ``provider[:model]``): MAIA's new LM instance per request (no
  history between calls), with the requests in :data:`GENERATOR_REQUEST` and :data:`SELECTOR_REQUEST`. A
  reply that cannot be read is asked for once more, then raises :class:`PromptReplyError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from aim_agent.vocabulary import ConceptInfo, Vocabularies, alternatives

if TYPE_CHECKING:
    from aim_agent.agent.backends import ChatClient, UsageMeter

N_PROMPTS = 7
T = TypeVar("T")


class PromptReplyError(ValueError):
    """A chat model's reply gave no prompts (or picks) that could be read, after one more request."""


@dataclass
class Prompts:
    """A label's generated prompts."""

    positive: list[str]
    neutral: list[str]


@dataclass
class Selection:
    """The prompts a selector picked for one label."""

    positive: list[str]
    neutral: list[str]


@runtime_checkable
class PromptWriter(Protocol):
    """Writes a label's prompts and picks, from a pool, those the label predicts most and least activating."""

    name: str

    def generate(self, label: str, n: int = N_PROMPTS) -> Prompts:
        """``n`` prompts that should make a unit with this label fire, and ``n`` neutral ones."""
        ...

    def select(self, label: str, pool: Sequence[str], n: int = N_PROMPTS) -> Selection:
        """The ``n`` pooled prompts the label predicts most activating and ``n`` others it predicts least."""
        ...


# --------------------------------------------------------------------------------------------- offline


def label_concepts(label: str, vocabularies: Vocabularies) -> list[ConceptInfo]:
    """The concepts a label is about: the main concept of each of its parts ('dog; cat or bird' -> dog, cat,
    bird), else every concept it names."""
    found: dict[str, ConceptInfo] = {}
    for part in label.split(";"):
        for alt in alternatives(part):
            named = vocabularies.concepts_in(alt)
            if named:
                found.setdefault(named[0].key, named[0])
    if not found:
        for c in vocabularies.concepts_in(label):
            found.setdefault(c.key, c)
    return list(found.values())


def generate_prompts(label: str, vocabularies: Vocabularies, n: int = N_PROMPTS) -> Prompts:
    """``n`` positive prompts showing the label's concepts (taken in turn) and ``n`` neutral ones showing none."""
    concepts = [c for c in label_concepts(label, vocabularies) if vocabularies.owner(c.key) is not None]
    if not concepts:  # a label the vocabulary cannot draw: its own words are the only positive prompt
        fallback = vocabularies.items[0] if vocabularies.items else None
        neutral = fallback.control_prompts([], n) if fallback is not None else []
        return Prompts(positive=[label.strip()] if label.strip() else [], neutral=neutral)
    per_concept = [vocabularies.owner(c.key)[0].concept_prompts(c.key, n) for c in concepts]  # type: ignore[index]
    positive: list[str] = []
    for i in range(n):
        prompts = per_concept[i % len(per_concept)]
        if i // len(per_concept) < len(prompts):
            positive.append(prompts[i // len(per_concept)])
    owner = vocabularies.owner(concepts[0].key)
    assert owner is not None
    neutral = owner[0].control_prompts([c.key for c in concepts], n)
    return Prompts(positive=list(dict.fromkeys(positive)), neutral=list(dict.fromkeys(neutral)))




def _tiebreak(label: str, prompt: str) -> str:
    return hashlib.blake2b(f"{label}\0{prompt}".encode(), digest_size=8).hexdigest()


def predicted_score(label: str, prompt: str, vocabularies: Vocabularies) -> int:
    """How many of the concepts the label names the prompt names too (the selector's prediction of its
    activation): 'boats on water' predicts a boat on water above a boat elsewhere."""
    wanted = {c.key for c in vocabularies.concepts_in(label)}
    return len(wanted & {c.key for c in vocabularies.concepts_in(prompt)})


def select_prompts(label: str, pool: Sequence[str], vocabularies: Vocabularies, n: int = N_PROMPTS) -> Selection:
    """The ``n`` pooled prompts predicted most activating for ``label`` and the ``n`` (others) predicted least;
    ties broken by a hash of (label, prompt), so the choice is deterministic and favours no method's order."""
    scores = {p: predicted_score(label, p, vocabularies) for p in pool}
    ranked = sorted(pool, key=lambda p: (-scores[p], _tiebreak(label, p)))
    positive = ranked[:n]
    rest = [p for p in pool if p not in set(positive)]
    neutral = sorted(rest, key=lambda p: (scores[p], _tiebreak(label, p)))[:n]
    return Selection(positive=positive, neutral=neutral)


class VocabularyPromptWriter:
    """``offline``: :func:`generate_prompts` and :func:`select_prompts` over the installed vocabularies."""

    name = "offline"

    def __init__(self, vocabularies: Vocabularies) -> None:
        self.vocabularies = vocabularies

    def generate(self, label: str, n: int = N_PROMPTS) -> Prompts:
        return generate_prompts(label, self.vocabularies, n)

    def select(self, label: str, pool: Sequence[str], n: int = N_PROMPTS) -> Selection:
        return select_prompts(label, pool, self.vocabularies, n)


# --------------------------------------------------------------------------------------------- a chat model

GENERATOR_SYSTEM = "You write prompts for a text-to-image model, to test descriptions of neurons in vision models."
GENERATOR_REQUEST = """A neuron inside a vision model is described as: "{label}".

Write {n} image prompts that should make this neuron fire as strongly as possible if the description is
accurate (cover every part of the description), and {n} prompts for neutral images, unrelated to the
description, that should leave it at its baseline. Each prompt describes one image in a few words (for
example: a red bus on a road).

Answer in exactly this form, one prompt a line:
[POSITIVE]
1. ...
[NEUTRAL]
1. ..."""

SELECTOR_SYSTEM = "You predict how neurons in vision models respond to images, from a description of the neuron."
SELECTOR_REQUEST = """A neuron inside a vision model is described as: "{label}".

If the description is accurate, which {n} of the image prompts below would make the neuron fire most, and which
{n} would leave it least active (at its baseline)?

{numbered}

Answer with two lines of prompt numbers, no number on both lines:
[MOST]: 3, 8, ...
[LEAST]: 1, 5, ..."""

RETRY_REQUEST = "Your answer could not be read: {why}. Answer again, in exactly the form asked."

_NUMBERED = re.compile(r"^\s*(?:\d+\s*[.):-]|[-*])\s*(.+?)\s*$")


def parse_generated(text: str, n: int) -> Prompts:
    """The ``[POSITIVE]`` and ``[NEUTRAL]`` lists of a generator reply (each once, at most ``n``); a
    :class:`PromptReplyError` naming what is missing."""
    from aim_agent.agent.llm_scientist import section  # the agent's reader of [TAG] parts (loads langchain)

    lists = {}
    for name in ("POSITIVE", "NEUTRAL"):
        lines = [m.group(1).strip().strip('"\'').strip() for line in (section(text, name) or "").splitlines()
                 if (m := _NUMBERED.match(line))]
        lists[name] = list(dict.fromkeys(p for p in lines if p))[:n]
    missing = [name for name, prompts in lists.items() if not prompts]
    if missing:
        raise PromptReplyError(f"no {' and no '.join(missing)} prompts (a [POSITIVE] and a [NEUTRAL] list of "
                               "numbered lines were asked for)")
    return Prompts(positive=lists["POSITIVE"], neutral=lists["NEUTRAL"])


def parse_selected(text: str, pool: Sequence[str], n: int) -> Selection:
    """The ``[MOST]`` and ``[LEAST]`` picks of a selector reply as prompts of ``pool`` (numbers from 1; out of
    range and repeated numbers are dropped, a number on both lines counts as MOST); a
    :class:`PromptReplyError` naming what is missing."""
    from aim_agent.agent.llm_scientist import section

    def picks(name: str, taken: Sequence[int] = ()) -> list[int]:
        numbers = [int(x) for x in re.findall(r"\d+", section(text, name) or "")]
        return list(dict.fromkeys(k for k in numbers if 1 <= k <= len(pool) and k not in taken))[:n]

    most = picks("MOST")
    least = picks("LEAST", most)
    if not most or not least:
        raise PromptReplyError(f"no {'[MOST]' if not most else '[LEAST]'} prompt numbers between 1 and {len(pool)}")
    return Selection(positive=[pool[k - 1] for k in most], neutral=[pool[k - 1] for k in least])


class ChatPromptWriter:
    """Generator and selector on a chat model: every request a fresh conversation (MAIA: a new LM instance)."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.name = client.spec.label()

    @classmethod
    def from_backend(cls, backend: str, meter: UsageMeter | None = None) -> ChatPromptWriter:
        from aim_agent.agent.backends import BackendSpec, ChatClient

        return cls(ChatClient.from_spec(BackendSpec.parse(backend), role="prompt-writer", meter=meter))

    def _ask(self, system: str, request: str, read: Callable[[str], T]) -> T:
        from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

        from aim_agent.agent.llm_scientist import text_of

        messages: list[BaseMessage] = [SystemMessage(content=system), HumanMessage(content=request)]
        reply = text_of(self.client.invoke(messages))
        try:
            return read(reply)
        except PromptReplyError as first:
            messages += [AIMessage(content=reply), HumanMessage(content=RETRY_REQUEST.format(why=first))]
            reply = text_of(self.client.invoke(messages))
            try:
                return read(reply)
            except PromptReplyError as again:
                raise PromptReplyError(f"{self.name}: {again}; its reply began {reply[:200]!r}") from None

    def generate(self, label: str, n: int = N_PROMPTS) -> Prompts:
        return self._ask(GENERATOR_SYSTEM, GENERATOR_REQUEST.format(label=label, n=n),
                         lambda reply: parse_generated(reply, n))

    def select(self, label: str, pool: Sequence[str], n: int = N_PROMPTS) -> Selection:
        numbered = "\n".join(f"{i}. {p}" for i, p in enumerate(pool, 1))
        return self._ask(SELECTOR_SYSTEM, SELECTOR_REQUEST.format(label=label, n=n, numbered=numbered),
                         lambda reply: parse_selected(reply, pool, n))


def prompt_writer(backend: str, vocabularies: Vocabularies, meter: UsageMeter | None = None) -> PromptWriter:
    """``offline`` (the vocabularies) or a chat model (``provider[:model]``, as ``aim interpret --backend``)."""
    if backend == "offline":
        return VocabularyPromptWriter(vocabularies)
    return ChatPromptWriter.from_backend(backend, meter)
