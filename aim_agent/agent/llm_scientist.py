"""A scientist driven by a VLM through LangChain.

Each call rebuilds the conversation from the :class:`ScientistView` (the scientist itself holds
no memory, so a resumed run continues exactly): a system message with the role, the API text
generated from the tool registry and the reply format; one user message with the task, the
exemplars, the hypotheses, a one-line summary of each older round, the recent rounds in full
and the critic's requests, with at most ``max_images`` images attached (base64 data URLs).
The reply is parsed into a :class:`Proposal` (tagged hypotheses, a ``run_experiment`` code block
or tool calls) or a :class:`Conclusion` (MAIA's ``[DESCRIPTION]`` and ``[LABEL]`` lines).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from PIL import Image

from aim_agent.agent.backends import ChatClient
from aim_agent.agent.prompts import ANSWER_FORMATS, AnswerFormat, scientist_system_prompt
from aim_agent.agent.schema import (
    Conclusion,
    Hypothesis,
    Mode,
    Observation,
    Proposal,
    ScientistView,
    SuggestedExperiment,
    ToolCall,
)
from aim_agent.images import ImageStore, current_store
from aim_agent.tools.adapters import image_block

ImageResolver = Callable[[str], Image.Image | None]

_TAG = re.compile(r"^\s*\[([A-Z][A-Z _]*?)(?:\s+([^\]]*))?\]\s*:?\s*", re.M)
_HYP = re.compile(r"^\s*\[HYPOTHESIS\s*([^\]]*)\]\s*:?\s*(?:\(([^)]*)\))?\s*(.*)$", re.M | re.I)
_CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)
_KINDS = {"single", "or", "and", "conditional", "other"}
_STATUS = {"open", "supported", "refuted"}


# --------------------------------------------------------------------------------------------
# reading replies


def text_of(message: BaseMessage | str) -> str:
    """The text of a reply (content may be a string or a list of blocks)."""
    if isinstance(message, str):
        return message
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def _confidence(value: str, default: float) -> float:
    m = re.search(r"\d*\.?\d+", value)
    if not m:
        return default
    x = float(m.group(0))
    if x > 1 and x <= 100:
        x /= 100
    return min(1.0, max(0.0, x))


def parse_hypotheses(text: str) -> list[Hypothesis]:
    """``[HYPOTHESIS h1] (concepts: a, b | kind: or | confidence: 0.4) statement`` lines."""
    found: list[Hypothesis] = []
    for i, m in enumerate(_HYP.finditer(text), 1):
        raw_id, fields, statement = m.group(1).strip(), m.group(2) or "", m.group(3).strip()
        hid = re.sub(r"[^\w.-]", "", raw_id) or f"h{i}"
        values: dict[str, str] = {}
        for part in re.split(r"[|;]", fields):
            key, sep, value = part.partition(":")
            if sep:
                values[key.strip().lower()] = value.strip()
        concepts = [c.strip().strip("'\"") for c in re.split(r",|/", values.get("concepts", values.get("concept", "")))]
        kind = values.get("kind", "").lower()
        concepts = [c for c in concepts if c]
        status = values.get("status", "open").lower()
        found.append(
            Hypothesis(
                id=hid,
                statement=statement or ", ".join(concepts) or hid,
                concepts=concepts,
                kind=kind if kind in _KINDS else ("or" if len(concepts) > 1 else "single"),
                condition=values.get("condition") or None,
                status=status if status in _STATUS else "open",
                confidence=_confidence(values.get("confidence", ""), 0.5),
            )
        )
    return found


def section(text: str, tag: str) -> str | None:
    """The text after ``[TAG]:`` up to the next tag line (None when absent)."""
    m = re.search(rf"^\s*\[{tag}\]\s*:?\s*", text, re.M | re.I)
    if not m:
        return None
    rest = text[m.end() :]
    nxt = _TAG.search(rest)
    return (rest[: nxt.start()] if nxt else rest).strip()


def parse_code(text: str) -> str | None:
    """The ``run_experiment`` code of a reply: the fenced block that defines it (or any block)."""
    blocks = _CODE.findall(text)
    for block in blocks:
        if re.search(r"^\s*(async\s+)?def\s+run_experiment\s*\(", block, re.M):
            return str(block).strip("\n") + "\n"
    if blocks:
        return str(blocks[0]).strip("\n") + "\n"
    m = re.search(r"^def\s+run_experiment\s*\(.*", text, re.M | re.S)
    return m.group(0).strip("\n") + "\n" if m else None


def invalid_call(call: Any) -> ToolCall:
    """A tool call the client could not parse, kept so that the model hears what was wrong with it."""
    name = str(call.get("name") or "?")
    raw = str(call.get("args") or "")
    why = str(call.get("error") or "").strip() or "its arguments are not a JSON object"
    return ToolCall(tool=name, id=call.get("id"), error=(
        f"your call to {name} could not be read: {why}. Arguments received: {raw[:300]!r}. Send the call "
        "again with the arguments as one JSON object that follows the tool's schema."))


def parse_proposal(reply: AIMessage | str, mode: Mode) -> Proposal:
    text = text_of(reply)
    thoughts = section(text, "THOUGHTS")
    if thoughts is None:
        first = _TAG.search(text)
        thoughts = (text[: first.start()] if first else text).strip()
        thoughts = _CODE.sub("", thoughts).strip()
    calls: list[ToolCall] = []
    if isinstance(reply, AIMessage):
        calls = [ToolCall(tool=c["name"], args=dict(c.get("args") or {}), id=c.get("id")) for c in reply.tool_calls]
        calls += [invalid_call(c) for c in reply.invalid_tool_calls]
    code = parse_code(text) if mode == "code" else None
    return Proposal(
        thoughts=thoughts[:4000],
        hypotheses=parse_hypotheses(text),
        code=code,
        tool_calls=calls,
        ready_to_conclude=bool(re.search(r"^\s*\[CONCLUDE\]", text, re.M | re.I)),
    )


def parse_conclusion(text: str, fallback_label: str = "unknown") -> Conclusion:
    """``[DESCRIPTION]``, ``[LABEL]`` / ``[LABEL n]``, ``[EVIDENCE]`` and ``[CONFIDENCE]`` sections."""
    description = section(text, "DESCRIPTION")
    labels = [m.group(1).strip() for m in re.finditer(r"^\s*\[LABEL(?:\s*\d+)?\]\s*:?\s*(.+)$", text, re.M | re.I)]
    evidence_text = section(text, "EVIDENCE") or ""
    evidence = [re.sub(r"^\s*[-*•\d.)]+\s*", "", line).strip() for line in evidence_text.splitlines()]
    evidence = [e for e in evidence if e]
    conf = section(text, "CONFIDENCE")
    if description is None:
        description = re.sub(r"^\s*\[[^\]]*\]\s*:?.*$", "", text, flags=re.M).strip() or text.strip()
    if not labels:
        labels = [re.split(r"[.;\n]", description, maxsplit=1)[0][:80].strip() or fallback_label]
    return Conclusion(
        description=description,
        labels=labels,
        evidence=evidence,
        confidence=_confidence(conf, 0.5) if conf else 0.5,
    )


def task_conclusion(text: str, form: AnswerFormat) -> Conclusion:
    """A model-level task's final reply as a :class:`Conclusion`: its reasoning section, its answer lines
    (``[LABEL]`` or ``[BIAS]``) as labels, and the reply as given (read by the task's own parser)."""
    labels = [m.group(1).strip() for m in re.finditer(rf"^\s*\[{form.label_tag}\]\s*:?\s*(.+)$", text, re.M | re.I)]
    reasoning = section(text, form.reasoning_tag)
    return Conclusion(description=reasoning or text.strip() or "(an empty reply)",
                      labels=labels or ["(no answer line)"], answer_text=text)


# --------------------------------------------------------------------------------------------
# writing the view


def default_resolver(image_dir: Path | None = None, store: ImageStore | None = None) -> ImageResolver:
    """Images by id: from ``store`` (default: the bound one), else from a run's ``images/`` folder."""

    def resolve(iid: str) -> Image.Image | None:
        images = store or current_store()
        try:
            return images.pixels(iid)
        except KeyError:
            pass
        if image_dir is not None:
            path = Path(image_dir) / f"{iid}.png"
            if path.exists():
                with Image.open(path) as im:
                    image = im.convert("RGB")
                images.register(image)
                return image
        return None

    return resolve


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _measurement_table(obs: Observation, limit: int = 30) -> str:
    if not obs.activations:
        return ""
    rows = list(zip(obs.prompts or [""] * len(obs.activations), obs.activations, strict=False))
    rows.sort(key=lambda r: -r[1])
    lines = [f"  {_fmt(a):>8}  {p or '(image without a known prompt)'}" for p, a in rows[:limit]]
    more = f"\n  ... {len(rows) - limit} more" if len(rows) > limit else ""
    return "activations measured (highest first):\n" + "\n".join(lines) + more


def summarize_observation(obs: Observation) -> str:
    """One line about an older round (the full text stays in the log on disk)."""
    status = "ok" if obs.ok else f"FAILED ({(obs.error or '')[:100]})"
    acts = ""
    if obs.activations:
        pairs = list(zip(obs.prompts or [""] * len(obs.activations), obs.activations, strict=False))
        top = max(pairs, key=lambda p: p[1])
        low = min(pairs, key=lambda p: p[1])
        acts = f"; {len(pairs)} activations, max {_fmt(top[1])} ('{top[0][:60]}'), min {_fmt(low[1])} ('{low[0][:60]}')"
    first = obs.text.strip().splitlines()[0][:120] if obs.text.strip() else ""
    shown = f"; {len(obs.image_ids)} images (no longer shown)" if obs.image_ids else ""
    return f"round {obs.round}: {status}{acts}{shown}; {first}"


def critic_section(view: ScientistView) -> str:
    """The critic's last report for the scientist: each objection with the experiment that answers it, those
    no longer asked for (they came back on the same evidence), and the hypotheses it dropped for that."""
    report = view.critic[-1]
    lines = [f"# Critic (after round {report.round})"]
    if report.satisfied:
        lines.append("The evidence behind your leading hypothesis passes the checks.")
    elif report.objections:
        lines += [f"- {o.text}" + (f" [suggested experiment: {suggestion_text(o.experiment)}]" if o.experiment else "")
                  for o in report.objections]
    else:
        lines += [f"- {r}" for r in report.requests]
    if report.escalated:
        lines.append("Open, but no longer asked for: these came back with no new evidence since they were first "
                     "raised, so the run stops spending rounds on them; a conclusion that stands on them is marked "
                     "untested on that point:")
        lines += [f"- {o.text}" for o in report.escalated]
    if view.dropped:
        lines.append("Dropped hypotheses (the critic no longer judges them; new evidence for them brings them back):")
        lines += [f"- {e.hypothesis}: {e.statement or ''} (objection: {e.objection.text})" for e in view.dropped]
    comment = report.checks.get("comment")
    if comment:
        lines.append(f"Reviewer's comment: {comment}")
    return "\n".join(lines)


def suggestion_text(experiment: SuggestedExperiment) -> str:
    """A suggested experiment in a few words: "more_images of 'dog' (3+)"."""
    what = experiment.action + (f" of '{experiment.concept}'" if experiment.concept else "")
    return what + (f" ({experiment.count}+)" if experiment.count else "")


class ViewRenderer:
    """Turns a view into message content: text sections and a bounded number of images."""

    def __init__(self, resolver: ImageResolver, max_images: int = 12, recent: int = 3) -> None:
        self.resolver = resolver
        self.max_images = max_images
        self.recent = recent

    def _images(self, ids: Sequence[str], budget: int, label: str) -> tuple[list[dict[str, Any]], int]:
        """Up to ``budget`` images, each after a line naming it; a note says how many were left out."""
        blocks: list[dict[str, Any]] = []
        left_out = 0
        for iid in ids:
            if budget <= 0:
                left_out += 1
                continue
            image = self.resolver(iid)
            if image is None:
                continue
            blocks.append({"type": "text", "text": f"{label} {iid}:"})
            blocks.append(image_block(image))
            budget -= 1
        if left_out:
            blocks.append({"type": "text", "text": f"({left_out} more {label}s not shown, to keep the request "
                                                   "within the image budget; their numbers are above)"})
        return blocks, budget

    def render(
        self, view: ScientistView, *, concluding: bool = False, max_images: int | None = None
    ) -> list[str | dict[Any, Any]]:
        """The view as content blocks, with at most ``max_images`` images (default: the renderer's budget)."""
        blocks: list[str | dict[Any, Any]] = []
        budget = self.max_images if max_images is None else max_images

        def text(t: str) -> None:
            blocks.append({"type": "text", "text": t})

        head = [f"# Task\n{view.task}", f"Unit: {view.unit}."]
        if view.must_conclude:
            head.append(f"{view.round} experiment rounds were run and the budget is spent: no more experiments. "
                        "Conclude from the evidence you have.")
        elif concluding:
            head.append(f"{view.round} experiment rounds were run.")
        else:
            head.append(f"This is round {view.round + 1} of at most {view.max_rounds}.")
        text("\n".join(head))

        if view.exemplar_activations or view.exemplar_image_ids:
            lines = ["# Dataset exemplars (where the unit fires most; bright outlined region = where it fires)"]
            for i, iid in enumerate(view.exemplar_image_ids):
                act = view.exemplar_activations[i] if i < len(view.exemplar_activations) else None
                desc = view.exemplar_descriptions[i] if i < len(view.exemplar_descriptions) else ""
                lines.append(f"E{i + 1} {iid}: activation {_fmt(act) if act is not None else '?'}"
                             + (f"; describer: {desc}" if desc else ""))
            text("\n".join(lines))
            share = budget if not view.observations else min(budget, max(1, budget // 2))
            shown, left = self._images(view.exemplar_image_ids, share, "exemplar")
            blocks += shown
            budget -= share - left

        if view.hypotheses:
            text("# Your current hypotheses\n" + "\n".join(
                f"[HYPOTHESIS {h.id}] (concepts: {', '.join(h.concepts)} | kind: {h.kind}"
                + (f" | condition: {h.condition}" if h.condition else "")
                + f" | confidence: {h.confidence:.2f} | status: {h.status}) {h.statement}"
                for h in view.hypotheses))

        older = view.observations[: -self.recent] if len(view.observations) > self.recent else []
        recent = view.observations[-self.recent :]
        if older:
            text("# Earlier rounds (summary; details were shown at the time)\n"
                 + "\n".join(summarize_observation(o) for o in older))
        recent_blocks: list[list[dict[str, Any]]] = []
        for obs in reversed(recent):  # newest first gets the images
            part = [{"type": "text", "text": self._observation_text(obs)}]
            shown, budget = self._images(obs.image_ids, budget, f"round {obs.round} image")
            recent_blocks.append(part + shown)
        for part in reversed(recent_blocks):
            blocks += part

        if view.critic:
            text(critic_section(view))
        if view.refused is not None:
            text(f"# Refused\nYour last proposal repeats the one of round {view.refused.repeats} (same hypotheses, "
                 "same experiment): it was not run, since it could only give the same result. Run what the critic "
                 "asks for, revise your hypotheses, or conclude. Proposing it again ends the run.")

        text(ANSWER_FORMATS[view.answer].conclusion_request() if concluding
             else "Now reply in the format given in the instructions.")
        return blocks

    @staticmethod
    def _observation_text(obs: Observation) -> str:
        parts = [f"# Round {obs.round} results ({'ok' if obs.ok else 'FAILED'})", obs.text.strip()]
        table = _measurement_table(obs)
        if table:
            parts.append(table)
        if obs.error:
            parts.append(f"error: {obs.error}")
        if obs.traceback:
            parts.append("traceback:\n" + obs.traceback.strip())
        if obs.image_ids:
            parts.append("images: " + ", ".join(obs.image_ids))
        return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------
# the scientist


class LLMScientist:
    """A :class:`~aim_agent.agent.schema.Scientist` backed by a chat model (any LangChain backend)."""

    def __init__(
        self,
        client: ChatClient,
        *,
        mode: Mode = "code",
        resolver: ImageResolver | None = None,
        max_images: int = 12,
        recent: int = 3,
        tools: Sequence[Any] = (),
    ) -> None:
        self.client = client
        self.mode = mode
        self.name = f"llm:{client.spec.label()}"
        self.renderer = ViewRenderer(resolver or default_resolver(), max_images=max_images, recent=recent)
        self.tools = list(tools)
        self._bound: ChatClient | None = None
        self._replies: dict[str, AIMessage] = {}

    def bind(self, tools: Sequence[Any]) -> None:
        """Give the LangChain tools the model may call (tool-calling mode)."""
        self.tools = list(tools)
        self._bound = None

    @property
    def _model(self) -> ChatClient:
        if self.mode != "tools" or not self.tools:
            return self.client
        if self._bound is None:
            self._bound = self.client.bind_tools(self.tools)
        return self._bound

    def messages(
        self, view: ScientistView, *, concluding: bool = False, max_images: int | None = None
    ) -> list[BaseMessage]:
        system = scientist_system_prompt(view.mode, view.api_text, view.answer)
        content = self.renderer.render(view, concluding=concluding, max_images=max_images)
        return [SystemMessage(content=system), HumanMessage(content=content)]

    @staticmethod
    def _key(proposal: Proposal) -> str:
        return proposal.model_dump_json(include={"thoughts", "tool_calls"})

    def _remember(self, proposal: Proposal, reply: AIMessage) -> Proposal:
        """Keep the reply as sent, so a follow-up turn replays it verbatim (call ids, Gemini's thought
        signatures, thinking blocks: providers reject a tool-call turn that lost them)."""
        if proposal.tool_calls:
            self._replies[self._key(proposal)] = reply
        return proposal

    def propose(self, view: ScientistView) -> Proposal:
        self._replies.clear()  # a new round: earlier rounds' replies are never sent again
        reply = self._model.invoke(self.messages(view))
        proposal = parse_proposal(reply, self.mode)
        if self.mode == "code" and proposal.code is None and not proposal.ready_to_conclude:
            proposal.thoughts += "\n(no ```python block with def run_experiment(system, tools) was found in the reply)"
        return self._remember(proposal, reply)

    def _turn_message(self, proposal: Proposal, ids: list[str]) -> AIMessage:
        """The assistant turn of ``proposal``: the reply as received, or rebuilt (after a resume)."""
        raw = self._replies.get(self._key(proposal))
        sent = [c["id"] for c in raw.tool_calls] + [c.get("id") for c in raw.invalid_tool_calls] if raw else []
        if raw is not None and sent == ids:
            return raw
        return AIMessage(  # a call that could not be read is sent back with no arguments, next to its error
            content=proposal.thoughts,
            tool_calls=[{"name": c.tool, "args": {} if c.error else c.args, "id": cid, "type": "tool_call"}
                        for c, cid in zip(proposal.tool_calls, ids, strict=True)],
        )

    def followup(self, view: ScientistView, turns: Sequence[tuple[Proposal, Sequence[Any]]]) -> Proposal:
        """Tool-calling mode: after seeing the results of ``turns``, more calls (or none: the round ends)."""
        budget = self.renderer.max_images
        n = 0
        images: list[str] = []
        turn_messages: list[BaseMessage] = []
        for proposal, steps in turns:
            ids = [c.id or f"call_{n + i}" for i, c in enumerate(proposal.tool_calls)]
            turn_messages.append(self._turn_message(proposal, ids))
            for step, cid in zip(steps, ids, strict=False):
                body = json.dumps(step.result) if step.ok else f"ERROR: {step.error}"
                turn_messages.append(ToolMessage(content=body[:8000], tool_call_id=cid, name=step.call.tool))
                images += step.image_ids
            n += len(steps)
        content: list[str | dict[Any, Any]] = [{"type": "text", "text": (
            "Those are the results of your calls (images below, by id). Make more calls to complete this "
            "round's experiment, or reply without tool calls (a short note on what the results show) to end it."
        )}]
        # the newest images first; the view's own images (exemplars, earlier rounds) get what is left of the budget
        unique = list(dict.fromkeys(images))
        newest = unique[-budget:] if budget > 0 else []
        shown, left = self.renderer._images(newest, budget, "image")
        if len(unique) > len(newest):
            shown.append({"type": "text", "text": f"({len(unique) - len(newest)} earlier images of this round are "
                                                  "not shown, to keep the request within the image budget)"})
        messages = [*self.messages(view, max_images=left), *turn_messages,
                    HumanMessage(content=[*content, *shown])]
        reply = self._model.invoke(messages)
        return self._remember(parse_proposal(reply, "tools"), reply)

    def conclude(self, view: ScientistView) -> Conclusion:
        reply = self.client.invoke(self.messages(view, concluding=True))
        lead = max(view.hypotheses, key=lambda h: h.confidence).statement if view.hypotheses else "unknown"
        form = ANSWER_FORMATS[view.answer]
        text = text_of(reply)
        if form.name == "describe":
            conclusion = parse_conclusion(text, fallback_label=lead)
        else:
            conclusion = task_conclusion(text, form)
        conclusion.forced = view.must_conclude
        return conclusion
