"""The nodes of the interpretation graph: small functions from state to a state update.

exemplars -> describe -> hypothesize -> experiment -> log -> critic -> (hypothesize | conclude)

Each node reads the state, uses the :class:`AgentRuntime` (model, providers, scientist) and
returns only what it changes. The wrapper :func:`node` adds the seconds spent and the token use
of the node's model calls to the update, so budgets survive checkpoints and resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from aim_agent.agent.backends import summarize_usage
from aim_agent.agent.critic import (
    concept_words,
    critique,
    evidence_lines,
    leading_hypothesis,
    mentions,
    mentions_any,
    still_standing,
)
from aim_agent.agent.experiment import (
    MAX_OBSERVATION_IMAGES,
    Recorder,
    run_code_experiment,
    run_tool_calls,
    tool_steps_observation,
)
from aim_agent.agent.llm_scientist import default_resolver, text_of
from aim_agent.agent.prompts import CRITIC_SYSTEM
from aim_agent.agent.runtime import AgentRuntime, runtime_for
from aim_agent.agent.schema import (
    ChoosesExemplarCount,
    Conclusion,
    CriticReport,
    Escalation,
    FollowsUp,
    Objection,
    Observation,
    Proposal,
    RefusedProposal,
    ScientistView,
)
from aim_agent.agent.state import AgentState, PendingExperiment
from aim_agent.exemplars.engine import DEFAULT_K
from aim_agent.images import ImageStore, image_id, use_store
from aim_agent.log import LogEntry, save_image
from aim_agent.tools.base import invoke
from aim_agent.vocabulary import Vocabularies, installed_vocabularies

#: what a node returns: the state keys it adds or changes (the reducers append its lists to the state's)
Update = AgentState

#: prefixes of ``state["forced"]``: why a conclusion was forced
ROUND_CAP, TOKEN_CAP, COST_CAP, TIME_CAP = "round cap", "token budget", "cost budget", "time budget"
#: the critic sent the conclusion back as often as it may, and its requests were still open
VETO_CAP = "critic veto limit"
#: the scientist proposed an experiment it had already run, and again when told so
REPEAT_CAP = "repeated proposal"


def node(name: str) -> Callable[[Callable[[AgentState, AgentRuntime], Update]], Callable[..., Update]]:
    """Make ``fn(state, rt)`` a graph node that also records its time and token use."""

    def decorate(fn: Callable[[AgentState, AgentRuntime], Update]) -> Callable[..., Update]:
        def run(state: AgentState, runtime: Runtime) -> Update:
            rt = runtime_for(runtime.context, state)
            started = time.perf_counter()
            with use_store(rt.ctx.images):  # providers called by the node find the run's images
                update = fn(state, rt)
            update["timings"] = {name: time.perf_counter() - started}
            used = rt.meter.drain()
            if used:
                update["usage"] = list(update.get("usage", [])) + used
            return update

        run.__name__ = name
        run.__doc__ = fn.__doc__
        return run

    return decorate


# --------------------------------------------------------------------------------------------
# helpers


def make_view(state: AgentState, rt: AgentRuntime, *, must_conclude: bool = False) -> ScientistView:
    """What the scientist may read: no ground truth, no config, no raw state."""
    max_rounds = rt.config.max_rounds
    return ScientistView(
        task=state["task"],
        unit=state["unit"],
        mode=state.get("mode", rt.config.mode),
        round=state.get("round", 0),  # experiments finished so far (the next one is round + 1)
        max_rounds=max_rounds,
        exemplar_activations=state.get("exemplar_activations", []),
        exemplar_image_ids=state.get("exemplar_image_ids", []),
        exemplar_descriptions=state.get("exemplar_descriptions", []),
        hypotheses=state.get("hypotheses", []),
        observations=state.get("observations", []),
        critic=state.get("critic", []),
        api_text=rt.api,
        must_conclude=must_conclude,
        answer=rt.config.answer,
        dropped=[e for e in state.get("escalations", []) if e.action == "dropped"],
    )


def proposal_key(proposal: Proposal) -> str:
    """What makes two proposals the same: their hypotheses (the claims, not their confidences or statuses) and
    their experiment (code, or tool calls with their arguments)."""
    hypotheses = sorted([h.statement.strip(), sorted(h.concepts), h.kind, h.condition or ""]
                        for h in proposal.hypotheses)
    calls = [[c.tool, c.args] for c in proposal.tool_calls]
    return json.dumps({"hypotheses": hypotheses, "code": (proposal.code or "").strip(), "tool_calls": calls},
                      sort_keys=True, default=str)


def budget_reason(state: AgentState, rt: AgentRuntime) -> str | None:
    """Why the run must conclude now (a cap is reached), or None."""
    cfg = rt.config
    rounds = state.get("round", 0)
    max_rounds = cfg.max_rounds  # from the config, so a resume may raise it
    if rounds >= max_rounds:
        return f"{ROUND_CAP}: {rounds} of {max_rounds} rounds run"
    usage = summarize_usage(state.get("usage", []))
    if cfg.max_tokens is not None and usage.total_tokens >= cfg.max_tokens:
        return f"{TOKEN_CAP}: {usage.total_tokens} of {cfg.max_tokens} tokens used"
    if cfg.max_cost is not None and usage.cost_known_usd >= cfg.max_cost:
        return f"{COST_CAP}: ${usage.cost_known_usd:.4f} of ${cfg.max_cost:.4f} spent"
    seconds = sum(state.get("timings", {}).values())
    if cfg.max_seconds is not None and seconds >= cfg.max_seconds:
        return f"{TIME_CAP}: {seconds:.0f} of {cfg.max_seconds:.0f} seconds used"
    return None


def _images(rt: AgentRuntime, ids: list[str]) -> list[Any]:
    resolve = default_resolver(rt.image_dir, rt.ctx.images)
    found = [resolve(i) for i in ids]
    return [im for im in found if im is not None]


# --------------------------------------------------------------------------------------------
# nodes


def exemplar_count(rt: AgentRuntime) -> int:
    """How many dataset exemplars the run shows: the config's number, else the scientist's own (a rule-based
    scientist reads more than a VLM can look at), else :data:`~aim_agent.exemplars.engine.DEFAULT_K`."""
    if rt.config.exemplars_k is not None:
        return rt.config.exemplars_k
    wanted = rt.scientist.exemplars_k if isinstance(rt.scientist, ChoosesExemplarCount) else None
    return int(wanted) if isinstance(wanted, int) and 1 <= wanted <= 100 else DEFAULT_K


@node("exemplars")
def exemplars(state: AgentState, rt: AgentRuntime) -> Update:
    """Top-activating dataset images of the unit (the tool ``dataset_exemplars``)."""
    log = rt.node_log(state.get("log", []), 0)
    spec = rt.spec_by_name.get("dataset_exemplars")
    if spec is None:
        return {"exemplar_image_ids": [], "exemplar_activations": [], "notes": ["no dataset_exemplars tool"]}
    try:
        output = invoke(spec, {"k": exemplar_count(rt)}, rt.ctx)
    except Exception as exc:  # a missing dataset must not end the run: the agent can still experiment
        note = f"dataset exemplars unavailable: {type(exc).__name__}: {exc}"
        log.add("note", note)
        return {"exemplar_image_ids": [], "exemplar_activations": [], "notes": [note], "log": log.entries}
    images = output.all_images()
    activations = [float(a) for a in getattr(output, "activations", [])]
    ids = [image_id(im) for im in images]
    logged = {i for e in log.entries for i in e.image_ids}
    if not set(ids) <= logged:  # make sure they are on disk for the report and for a resume
        log.add("exemplars", f"top {len(ids)} dataset exemplars", images=images, activations=activations)
    threshold = rt.ctx.system.threshold if rt.ctx.system is not None else None
    return {"exemplar_image_ids": ids, "exemplar_activations": activations, "log": log.entries,
            "unit_threshold": threshold}


@node("describe")
def describe(state: AgentState, rt: AgentRuntime) -> Update:
    """The blind describer: it receives the exemplar overlays and nothing else."""
    ids = state.get("exemplar_image_ids", [])
    describer = rt.ctx.describer
    if not ids or describer is None:
        return {"exemplar_descriptions": []}
    images = _images(rt, ids)
    try:
        descriptions = list(describer.describe(images))  # images only: no task, no hypotheses
    except Exception as exc:
        return {"exemplar_descriptions": [], "notes": [f"describer failed: {type(exc).__name__}: {exc}"]}
    log = rt.node_log(state.get("log", []), 0)
    log.add("note", "blind descriptions of the exemplars", images=images, descriptions=descriptions)
    return {"exemplar_descriptions": descriptions, "log": log.entries}


@node("hypothesize")
def hypothesize(state: AgentState, rt: AgentRuntime) -> Update:
    """The scientist updates its hypotheses and proposes the next experiment (unless a cap is hit)."""
    reason = budget_reason(state, rt)
    if reason:
        return {"forced": reason, "proposal": None}
    done = state.get("round", 0)
    view = make_view(state, rt)
    proposal = rt.scientist.propose(view)
    # a proposal that repeats an earlier one (same hypotheses, same experiment) would spend a round learning
    # nothing: it is refused, counted, and the scientist asked once more with the refusal in its view
    earlier = list(state.get("proposal_keys", []))
    refused: list[RefusedProposal] = []
    key = proposal_key(proposal)
    while proposal.has_experiment and key in earlier and len(refused) < 2:
        refusal = RefusedProposal(round=done + 1, repeats=earlier.index(key) + 1, thoughts=proposal.thoughts[:500])
        refused.append(refusal)
        if len(refused) < 2:
            proposal = rt.scientist.propose(view.model_copy(update={"refused": refusal}))
            key = proposal_key(proposal)
    log = rt.node_log(state.get("log", []), done)
    for r in refused:
        log.add("note", f"refused a proposal that repeats round {r.repeats}'s (same hypotheses, same experiment); "
                "it was not run", data={"refused_proposal": r.model_dump(mode="json")})
    notes = [f"round {r.round}: refused a proposal that repeats round {r.repeats}'s" for r in refused]
    if len(refused) == 2:  # told it was repeating itself, it repeated itself again: nothing new will come
        return {"forced": f"{REPEAT_CAP}: the scientist proposed round {refused[-1].repeats}'s experiment again "
                          "after a refusal", "proposal": None,
                "refused_proposals": refused, "notes": notes, "log": log.entries}
    # every proposal is logged: one that runs an experiment opens the next round; a bare request to
    # conclude belongs to the round it answers (the critic judges it there)
    log.round = done if proposal.only_asks_to_conclude else done + 1
    log.add("hypothesis", proposal.thoughts, data={"proposal": proposal.model_dump(mode="json")})
    update: Update = {"proposal": proposal, "log": log.entries}
    if refused:
        update |= {"refused_proposals": refused, "notes": notes}
    if proposal.has_experiment:
        update["proposal_keys"] = [key]
    if proposal.hypotheses:
        update["hypotheses"] = proposal.hypotheses
    return update


@node("experiment")
def experiment(state: AgentState, rt: AgentRuntime) -> Update:
    """Run the proposal: code in the sandbox, or tool calls (with follow-up turns for LLM scientists)."""
    proposal = state.get("proposal") or Proposal()
    round_no = state.get("round", 0) + 1
    log = rt.node_log(state.get("log", []), round_no)
    recorder = Recorder(round=round_no, known_prompts=dict(state.get("image_prompts", {})), images=rt.ctx.images)
    mode = state.get("mode", rt.config.mode)
    if proposal.code and proposal.code.strip() and (mode == "code" or not proposal.tool_calls):
        outcome = run_code_experiment(proposal.code, rt.ctx, rt.specs, recorder, timeout_s=rt.config.code_timeout_s,
                                      unsafe_sandbox=rt.config.unsafe_sandbox)
        observation = outcome.observation
    elif proposal.tool_calls:
        observation = _tool_round(state, rt, proposal, recorder, round_no)
    else:
        expected = "a ```python block defining run_experiment(system, tools)" if mode == "code" else "tool calls"
        observation = Observation(
            round=round_no, ok=False, text=f"your reply began: {proposal.thoughts[:300]!r}",
            error=f"no experiment was given: the reply must contain {expected}",
        )
    observation = with_log_entries(observation, log.entries)
    pending = PendingExperiment(
        observation=observation,
        measurements=recorder.measurements,
        log_entries=log.entries,
        image_prompts=recorder.new_prompts,
        code=proposal.code,
        tool_calls=proposal.tool_calls,
    )
    return {"pending": pending}


def with_log_entries(observation: Observation, entries: list[Any]) -> Observation:
    """Add what the experiment displayed or logged (``display``, ``log_experiment``) to its observation."""
    lines, shown = [], []
    for entry in entries:
        if entry.kind == "display":
            lines.append(f"displayed: {entry.text}" if entry.text else "displayed images:")
            shown += entry.image_ids
        elif entry.kind == "experiment":
            lines.append(f"logged experiment: {entry.text or '(no note)'} ({len(entry.image_ids)} images)")
            shown += entry.image_ids
    if not lines:
        return observation
    ids = list(dict.fromkeys([*shown, *observation.image_ids]))[:MAX_OBSERVATION_IMAGES]
    text = "\n".join([observation.text, *lines]) if observation.text else "\n".join(lines)
    return observation.model_copy(update={"text": text, "image_ids": ids})


def _tool_round(
    state: AgentState, rt: AgentRuntime, proposal: Proposal, recorder: Recorder, round_no: int
) -> Observation:
    """Run the proposal's tool calls, then the scientist's follow-up turns (up to ``react_steps``)."""
    specs = rt.spec_by_name
    steps, outputs = run_tool_calls(proposal.tool_calls, rt.ctx, specs, recorder)
    turns = [(proposal, list(steps))]
    remarks = ""
    if isinstance(rt.scientist, FollowsUp):
        view = make_view(state, rt)
        for _ in range(rt.config.react_steps):
            more = rt.scientist.followup(view, turns)
            if not more.tool_calls:
                remarks = more.thoughts
                break
            new, new_outputs = run_tool_calls(more.tool_calls, rt.ctx, specs, recorder, outputs)
            steps += new
            outputs += new_outputs
            turns.append((more, new))
    return tool_steps_observation(round_no, steps, recorder, remarks)


@node("log")
def log_results(state: AgentState, rt: AgentRuntime) -> Update:
    """Commit the experiment: observation, measurements and experiment-log entries (images on disk)."""
    pending = state.get("pending")
    if pending is None:
        return {}
    obs = pending.observation
    log = rt.node_log(state.get("log", []), obs.round)
    log.extend(pending.log_entries)
    measured = {m.image_id: m for m in pending.measurements}
    inputs = _images(rt, list(measured))
    save_images(rt.image_dir, _images(rt, obs.image_ids), rt.ctx.images)
    log.add(
        "experiment",
        obs.text,
        images=inputs,
        activations=[measured[image_id(im)].activation for im in inputs],
        prompts=[measured[image_id(im)].prompt for im in inputs],
        data={
            "ok": obs.ok,
            "error": obs.error,
            "traceback": obs.traceback,
            "code": pending.code,
            "tool_calls": [c.model_dump() for c in pending.tool_calls],
            "overlay_ids": obs.image_ids,
            "measurements": [m.model_dump() for m in pending.measurements],
        },
    )
    new = log.entries
    write_log(rt.run_dir, [*state.get("log", []), *new])
    return {
        "observations": [obs],
        "measurements": pending.measurements,
        "image_prompts": pending.image_prompts,
        "log": new,
        "round": obs.round,
        "pending": None,
    }


def save_images(image_dir: Path, images: list[Any], store: ImageStore) -> None:
    """Write images as ``<id>.png`` with their records (what a resumed run and the report read back)."""
    for image in images:
        save_image(image_dir, image, store)


def write_log(run_dir: Path, entries: Sequence[LogEntry]) -> None:
    """The log as ``run_dir/log.jsonl``, one entry a line (rewritten whole; the checkpoint is the source of truth)."""
    path = run_dir / "log.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    run_dir.mkdir(parents=True, exist_ok=True)
    with tmp.open("w") as f:
        for entry in entries:
            f.write(json.dumps(entry.model_dump(mode="json")) + "\n")
    tmp.replace(path)


@node("critic")
def critic(state: AgentState, rt: AgentRuntime) -> Update:
    """Check the evidence behind the leading hypothesis; decide whether the run may conclude.

    An objection that comes back on the same evidence is escalated, never asked for again: while the scientist
    experiments, the hypothesis it is about is dropped (the critic judges the next one); when the scientist asks
    to conclude, it no longer blocks, and the conclusion is marked as standing over it.
    """
    round_no = state.get("round", 0)
    hypotheses = state.get("hypotheses", [])
    dropped: dict[str, list[Objection]] = {}
    for e in state.get("escalations", []):
        if e.action == "dropped" and e.hypothesis:
            dropped.setdefault(e.hypothesis, []).append(e.objection)
    proposal = state.get("proposal")
    wants = bool(proposal and proposal.ready_to_conclude)
    # a round whose experiment failed brought no evidence, but the scientist did try: nothing is a repeat then
    observations = state.get("observations", [])
    failed = bool(proposal and proposal.has_experiment and observations and observations[-1].round == round_no
                  and not observations[-1].ok)
    earlier = [] if failed else state.get("critic", [])

    def judge() -> CriticReport:
        return judge_evidence(state, rt, dropped=dropped, earlier=earlier, lead=proposal.lead if proposal else None)

    report = judge()
    escalations: list[Escalation] = []
    while report.escalated and not wants and report.checks.get("leading") is not None:
        lead_id = report.checks["leading"]
        statement = next((h.statement for h in hypotheses if h.id == lead_id), None)
        escalations += [Escalation(round=round_no, objection=o, hypothesis=lead_id, statement=statement,
                                   action="dropped") for o in report.escalated]
        dropped.setdefault(lead_id, []).extend(report.escalated)
        report = judge()
    if escalations:
        report.checks["dropped"] = sorted({e.hypothesis for e in escalations if e.hypothesis})
    if rt.critic_client is not None:
        report.checks["comment"] = _critic_comment(rt, state, report)
    vetoes = state.get("vetoes", 0)
    update: Update = {"critic": [report]}
    reason = budget_reason(state, rt)
    if reason:
        update["forced"] = reason
    elif wants and report.requests and vetoes < rt.config.max_critic_vetoes:
        update["vetoes"] = vetoes + 1
        report.checks["vetoed_conclusion"] = True
    elif wants:
        update["conclude_now"] = True
        if report.requests:  # the veto limit ran out: the conclusion stands on evidence the critic rejects
            report.checks["overruled"] = f"concluding after {vetoes} vetoes; open requests remain"
            update["forced"] = (f"{VETO_CAP}: the critic sent the conclusion back {vetoes} time(s) and "
                                f"{len(report.requests)} request(s) remain open")
        lead = report.checks.get("leading")
        statement = next((h.statement for h in hypotheses if h.id == lead), None)
        escalations += [Escalation(round=round_no, objection=o, hypothesis=lead, statement=statement,
                                   action="concluded_open") for o in report.escalated]
    if escalations:
        update["escalations"] = escalations
    log = rt.node_log(state.get("log", []), round_no)
    log.add("critic", critic_text(report, escalations), data=report.model_dump(mode="json"))
    update["log"] = log.entries
    return update


def judge_evidence(
    state: AgentState,
    rt: AgentRuntime,
    *,
    dropped: dict[str, list[Objection]] | None = None,
    earlier: Sequence[CriticReport] = (),
    lead: str | None = None,
) -> CriticReport:
    """The critic's rules (:func:`~aim_agent.agent.critic.critique`) on the state's hypotheses and measurements,
    with the installed vocabularies."""
    return critique(state.get("round", 0), state.get("hypotheses", []), state.get("measurements", []),
                    rt.critic_rules, installed_vocabularies(), dropped=dropped, earlier=earlier, lead=lead)


def critic_text(report: CriticReport, escalations: Sequence[Escalation] = ()) -> str:
    """The critic's report as a person reads it (the run log, progress lines)."""
    lines = [f"escalated: {e.text()}" for e in escalations]
    if report.satisfied:
        return "\n".join(["satisfied", *lines])
    if report.requests:
        lines += ["requests:", *(f"- {r}" for r in report.requests)]
    if report.escalated:
        lines += ["open, no longer asked for (repeated with no new evidence):",
                  *(f"- {o.text}" for o in report.escalated)]
    return "\n".join(lines)


def _critic_comment(rt: AgentRuntime, state: AgentState, report: CriticReport) -> str:
    lead = next((h for h in state.get("hypotheses", []) if h.id == report.checks.get("leading")), None)
    body = {
        "leading_hypothesis": lead.model_dump() if lead else None,
        "evidence": report.checks.get("evidence", []),
        "rule_requests": report.requests,
        "rounds_run": state.get("round", 0),
    }
    assert rt.critic_client is not None
    try:
        reply = rt.critic_client.invoke(
            [SystemMessage(content=CRITIC_SYSTEM), HumanMessage(content=json.dumps(body, default=str))]
        )
        return text_of(reply).strip()[:1200]
    except Exception as exc:  # the comment is optional; the rules already decided
        return f"(critic model unavailable: {type(exc).__name__})"


def fallback_conclusion(state: AgentState) -> Conclusion:
    """A conclusion without a model call: the leading hypothesis as it stands."""
    lead = leading_hypothesis(state.get("hypotheses", []))
    if lead is None:
        return Conclusion(description="no hypothesis was formed before the budget ran out",
                          labels=["unknown"], confidence=0.0)
    return Conclusion(description=lead.statement, labels=[", ".join(lead.concepts) or lead.statement],
                      confidence=lead.confidence)


@node("conclude")
def conclude(state: AgentState, rt: AgentRuntime) -> Update:
    """The final answer in the run's form (MAIA's [DESCRIPTION] and [LABEL]s, or a model-level task's), plus the
    evidence behind it."""
    forced = state.get("forced")
    if forced and forced.startswith((TOKEN_CAP, COST_CAP)):
        conclusion = fallback_conclusion(state)  # no more model calls once the money or tokens are spent
    else:
        conclusion = rt.scientist.conclude(make_view(state, rt, must_conclude=bool(forced)))
    conclusion.forced = bool(forced)
    open_ = [e for e in open_objections(state.get("escalations", []), conclusion)
             if still_standing(e.objection, state.get("measurements", []), rt.critic_rules, installed_vocabularies())]
    if open_:
        conclusion.open_objections = [*conclusion.open_objections, *(e.objection.text for e in open_)]
        conclusion.evidence = [*conclusion.evidence, *(
            f"Open objection: {e.text()}. The conclusion is untested on that point." for e in open_)]
    # the caution about unexplained exemplars reads labels as concepts: only a description's labels are
    describes = rt.config.answer == "describe"
    coverage = exemplar_coverage(state, conclusion, installed_vocabularies()) if describes else None
    if coverage:
        conclusion.description = f"{conclusion.description.rstrip()} {coverage}"
        conclusion.evidence = [*conclusion.evidence, coverage]
    if not conclusion.evidence:
        reports = state.get("critic", [])
        last = reports[-1] if reports else judge_evidence(state, rt)
        conclusion.evidence = evidence_lines(last)
    log = rt.node_log(state.get("log", []), state.get("round", 0))
    log.add("conclusion", conclusion.maia_text(), data={**conclusion.model_dump(), "forced_by": forced})
    new = log.entries
    write_log(rt.run_dir, [*state.get("log", []), *new])
    return {"conclusion": conclusion, "log": new}


def open_objections(escalations: Sequence[Escalation], conclusion: Conclusion) -> list[Escalation]:
    """The escalated objections a conclusion stands over: those whose concept its labels name (whether the
    hypothesis was dropped or the scientist concluded with it open), one per objection."""
    out: dict[str, Escalation] = {}
    for e in escalations:
        concepts = [c for c in (e.objection.concept or "").split(" & ") if c.strip()]
        names = bool(concepts) and all(
            any(mentions(label, c) or label.strip().lower() == c.strip().lower() for label in conclusion.labels)
            for c in concepts)
        if names:
            out.setdefault(f"{e.hypothesis}|{e.objection.key}", e)
    return list(out.values())


def _main_concepts(conclusion: Conclusion, state: AgentState, vocabulary: Vocabularies) -> list[list[str]]:
    """For each label, the words that show its main concept (the first it names: "dog" of "dog, only when
    a leash is present"); the leading hypothesis's concepts when no vocabulary reads the labels."""
    out = []
    for label in conclusion.labels:
        named = vocabulary.concepts_in(label)
        if named:
            main = named[0]
            out.append([*main.words, *sorted(vocabulary.members(main.name))])
    if out:
        return out
    lead = leading_hypothesis(state.get("hypotheses", []))
    if lead is None:
        return []
    concepts = lead.concepts[:1] if lead.kind == "conditional" else lead.concepts
    return [concept_words(c, vocabulary) for c in concepts if c.strip()]


def exemplar_coverage(state: AgentState, conclusion: Conclusion, vocabulary: Vocabularies) -> str | None:
    """A sentence for the conclusion when most dataset exemplars (by the blind describer's words) do not show
    the concluded concept: the unit's strongest natural images are then left unexplained. None otherwise."""
    descriptions = state.get("exemplar_descriptions", [])
    wanted = _main_concepts(conclusion, state, vocabulary)
    if len(descriptions) < 3 or not wanted:
        return None
    shown = [d for d in descriptions if any(mentions_any(d, words) for words in wanted)]
    if 2 * len(shown) >= len(descriptions):
        return None
    counts: dict[str, int] = {}
    for d in descriptions:
        if d in shown:
            continue
        # each concept once per description (several vocabularies, or several senses of a word, may name it)
        for name in {c.name for c in vocabulary.concepts_in(d) if c.kind != "category"}:
            counts[name] = counts.get(name, 0) + 1
    top = sorted(counts, key=lambda k: (-counts[k], k))[:4]
    others = f"; the others mostly show {', '.join(f'{k} ({counts[k]})' for k in top)}" if top else ""
    return (f"Caution: only {len(shown)} of {len(descriptions)} dataset exemplars show what this conclusion names"
            f"{others}. The numbers above come from the images this run made or found, not the exemplars, so the "
            "unit's strongest natural images are not explained by this conclusion.")


# --------------------------------------------------------------------------------------------
# routing


def after_hypothesize(state: AgentState) -> Literal["conclude", "critic", "experiment"]:
    """Where a round goes after the scientist answered: a forced stop concludes, a bare request to conclude goes
    to the critic, an experiment runs."""
    if state.get("forced"):
        return "conclude"
    proposal = state.get("proposal")
    if proposal is not None and proposal.only_asks_to_conclude:
        return "critic"
    return "experiment"


def after_critic(state: AgentState) -> Literal["conclude", "hypothesize"]:
    """Where a round goes after the critic: conclude when forced or allowed, else back to the scientist."""
    if state.get("forced") or state.get("conclude_now"):
        return "conclude"
    return "hypothesize"


__all__ = [
    "after_critic",
    "after_hypothesize",
    "conclude",
    "critic",
    "critic_text",
    "describe",
    "exemplars",
    "experiment",
    "hypothesize",
    "log_results",
    "make_view",
    "open_objections",
    "proposal_key",
]
