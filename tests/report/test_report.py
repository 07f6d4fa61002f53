"""The HTML report: built from the typed run record only, it shows every round as the record has it.

One real run (the offline scientist on a synthetic neuron, through the whole graph) checks that
each round's hypotheses, experiment, images and critic reach the page as ``result.json`` holds
them; records made with :class:`RunRecord`'s constructor cover the edge cases (escaping, failures,
zero rounds), so the shape the tests use is the shape the runner writes.
"""

from __future__ import annotations

import html
import importlib
import json
import re
from pathlib import Path

import pytest
from aim_testing import prompt_exemplars
from PIL import Image

from aim_agent.agent.backends import BackendSpec, CallUsage, summarize_usage
from aim_agent.agent.config import RunConfig
from aim_agent.agent.record import (
    Backends,
    Exemplars,
    MissingRunRecord,
    RoundRecord,
    RunRecord,
    RunRecordError,
    RunUsage,
    read_run_record,
)
from aim_agent.agent.runner import RunResult, run_interpret
from aim_agent.agent.schema import Conclusion, CriticReport, Hypothesis, Observation, Proposal
from aim_agent.agent.state import Measurement
from aim_agent.images import image_id
from aim_agent.report import render_report, write_report
from aim_agent.report.html import fmt

EVIL = '<script>alert("x")</script>'


# --------------------------------------------------------------------------- a real run


WORLD_PROMPTS = [
    "a brown dog on grass", "a red car on a road", "a yellow cat on a beach", "a blue cup on grass",
    "a green tree in a forest", "a white boat on water", "a gray car at night", "a red ball in a room",
]


world_exemplars = prompt_exemplars(WORLD_PROMPTS)


@pytest.fixture(scope="module")
def world_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The offline scientist on a synthetic neuron, three rounds of code experiments, report written by the runner."""
    neurons = importlib.import_module("aim_world.neurons")
    names = [n.name for n in neurons.list_synthetic()]
    config = RunConfig(synthetic="mono_dog" if "mono_dog" in names else names[0],
                       backend=BackendSpec(provider="offline"), mode="code", max_rounds=3, exemplars_k=6,
                       image_size=112, runs_dir=str(tmp_path_factory.mktemp("runs")), run_id="world")
    return run_interpret(config, tools=[world_exemplars])


def _sections(page: str) -> dict[int, str]:
    """The HTML of each round's section, by round number."""
    parts = re.split(r'(?=<section class="card round" id="round-\d+">)', page)
    return {int(re.match(r'<section class="card round" id="round-(\d+)"', p)[1]): p.split("</section>")[0]
            for p in parts[1:]}


def _row(section: str, statement: str) -> str:
    rows = [r for r in section.split("<tr") if f"<td>{html.escape(statement)} " in r]
    assert len(rows) == 1, f"one table row for {statement!r}, found {len(rows)}"
    return rows[0]


def test_report_shows_each_round_of_a_real_run_as_recorded(world_run: RunResult, tmp_path: Path) -> None:
    record = read_run_record(world_run.run_dir)
    assert record == world_run.record and record.schema_version == 3
    # a record of schema 2 (before repeated proposals and escalations were recorded) still reads
    data = json.loads((world_run.run_dir / "result.json").read_text())
    for field in ("repeated_proposals", "refused_proposals", "escalations"):
        data.pop(field)
    old = tmp_path / "v2"
    old.mkdir()
    (old / "result.json").write_text(json.dumps({**data, "schema_version": 2}))
    assert read_run_record(old).repeated_proposals == 0 and read_run_record(old).schema_version == 3
    assert world_run.report_path is not None
    page = world_run.report_path.read_text()
    sections = _sections(page)
    assert record.rounds_run >= 2 and sorted(sections) == [rd.round for rd in record.rounds]
    assert sum(bool(rd.proposal and rd.proposal.hypotheses) for rd in record.rounds) >= 2
    for rd in record.rounds:
        section = sections[rd.round]
        assert rd.proposal is not None
        for h in rd.proposal.hypotheses:  # statement, status and confidence of every hypothesis of the round
            row = _row(section, h.statement)
            assert f">{h.status}</span>" in row and f"<span>{h.confidence:.2f}</span>" in row
        assert html.escape(rd.proposal.code or "") in section  # the experiment, as the scientist wrote it
        images = [(i, a) for e in rd.shown for i, a in zip(e.image_ids, e.activations, strict=True)]
        assert images, f"round {rd.round} shows no images"
        for iid, act in images:  # every image, on disk, with its activation
            assert f'src="images/{iid}.png"' in section and (world_run.run_dir / "images" / f"{iid}.png").is_file()
            assert f"<span>{html.escape(fmt(act))}</span>" in section
        verdicts = re.findall(r"<strong>Critic</strong> <span class=\"badge (?:ok|warn)\">([a-z ]+)</span>", section)
        assert verdicts == ["satisfied" if c.satisfied else "not satisfied" for c in rd.critic[:1]]
        for request in rd.critic[0].requests:
            assert html.escape(request) in section
    # the final hypotheses, the conclusion, and the ground truth the scientist never saw
    assert record.conclusion is not None and record.ground_truth
    assert all(f"[LABEL] {html.escape(label)}" in page for label in record.conclusion.labels)
    assert f"<strong>Ground truth:</strong> {html.escape(record.ground_truth)}" in page
    assert record.ground_truth not in record.task
    conclusion = page.split('id="conclusion"')[1].split("</section>")[0]
    for h in record.hypotheses:  # each final hypothesis has its row, or is named in its refuted variants' row
        assert html.escape(h.statement) in conclusion or (
            h.status == "refuted" and html.escape(h.condition or h.concepts[-1]) in conclusion)


def test_the_record_keeps_every_step_of_the_run(world_run: RunResult) -> None:
    record = world_run.record
    assert record.backends.scientist == "offline" and record.config.max_rounds == 3
    assert len(record.exemplars.image_ids) == 6 == len(record.exemplars.descriptions)
    for rd in record.rounds:
        assert rd.observation is not None and rd.observation.ok and rd.observation.round == rd.round
        assert rd.measurements and all(m.round == rd.round and m.prompt for m in rd.measurements)
        assert rd.critic and all(c.round == rd.round for c in rd.critic)
    assert record.usage.wall_time_s > 0 and set(record.usage.node_seconds) >= {"hypothesize", "experiment"}
    assert not list(world_run.run_dir.glob("*.tmp")) and not list(world_run.run_dir.glob(".*.tmp"))


# --------------------------------------------------------------------------- records made by hand


def _image(run_dir: Path, shade: int) -> str:
    im = Image.new("RGB", (16, 16), (shade, 40, 200 - shade))
    iid = image_id(im)
    (run_dir / "images").mkdir(parents=True, exist_ok=True)
    im.save(run_dir / "images" / f"{iid}.png")
    return iid


def _hypothesis(statement: str, status: str = "open", confidence: float = 0.8, hid: str = "H1") -> Hypothesis:
    return Hypothesis(id=hid, statement=statement, concepts=["dog"], status=status, confidence=confidence)


def make_record(run_dir: Path, n_rounds: int = 2, *, label: str = "dog", **changes) -> RunRecord:
    """A record made with the model's constructor (the shape the runner writes), with its images on disk."""
    run_dir.mkdir(parents=True)
    exemplars = [_image(run_dir, 10 * k) for k in range(3)]
    made = []
    for r in range(1, n_rounds + 1):
        prompts = ["a dog on grass", "a dog on grass | edit: replace the dog with a cup", "a cup on snow",
                   f"a cat {EVIL}"] + [f"a dog in context {k}" for k in range(8)]
        ids = [_image(run_dir, 60 + 12 * r + k) for k in range(len(prompts))]
        acts = [1.8, 0.1, 0.05, -0.2] + [1.0 + 0.1 * k for k in range(8)]
        hyps = [_hypothesis(f"dog detector {EVIL}", "supported" if r > 1 else "open"),
                _hypothesis("cat detector", "refuted" if r > 1 else "open", 0.2, "H2")]
        if r > 1:
            hyps.append(_hypothesis("dogs only on grass", "open", 0.4, "H3"))
        made.append(RoundRecord(
            round=r,
            proposal=Proposal(thoughts=f"Next (screen): round {r} thoughts {EVIL}", hypotheses=hyps,
                              code=f"def run_experiment(system, tools):\n    return '{EVIL}'\n"),
            observation=Observation(round=r, ok=True, text="calls: tools.text2image", image_ids=ids),
            measurements=[Measurement(round=r, image_id=i, activation=a, prompt=p, source="system.neuron")
                          for i, a, p in zip(ids, acts, prompts, strict=True)],
            critic=[CriticReport(round=r, satisfied=r > 1, requests=[] if r > 1 else [f"test more {EVIL}"],
                                 checks={"leading": "H1"})],
        ))
    calls = [CallUsage(role="scientist", backend="openai:gpt-4o", input_tokens=1200, output_tokens=300,
                       cost_usd=0.0012)]
    values = dict(
        run_id=run_dir.name,
        status="finished",
        task="what does the unit detect?",
        unit_label="unit 3 of layer conv4 of world-cnn",
        config=RunConfig(model="world-cnn", layer="conv4", unit=3, backend=BackendSpec.parse("openai:gpt-4o")),
        backends=Backends(scientist="llm:openai:gpt-4o", describer="world", critic="rules only"),
        conclusion=Conclusion(description=f"Selective for dogs {EVIL}", labels=[label], confidence=0.9,
                              evidence=[f"AUC 1.00 {EVIL}"]),
        ground_truth="dog",
        hypotheses=made[-1].proposal.hypotheses if made else [],
        exemplars=Exemplars(image_ids=exemplars, activations=[2.0, 1.5, 1.0],
                            descriptions=["a brown dog on grass", f"a dog {EVIL}", "a black dog"]),
        rounds=made,
        rounds_run=n_rounds,
        usage=RunUsage(totals=summarize_usage(calls), calls=calls, wall_time_s=12.5),
    )
    record = RunRecord(**{**values, **changes})
    record.write(run_dir)
    return record


def test_writes_a_complete_page(tmp_path: Path) -> None:
    run = tmp_path / "run1"
    make_record(run, n_rounds=3)
    path = write_report(run)
    assert path == run / "report.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert sorted(_sections(page)) == [1, 2, 3]
    assert "unit 3 of layer conv4 of world-cnn" in page
    assert "[LABEL] dog" in page and "labels match" in page
    assert "1,500" in page and "$0.0012" in page and "12.5 s" in page  # tokens, cost, time
    assert "llm:openai:gpt-4o" in page and "3 of 15 max" in page
    # images are linked relatively and exist on disk
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs and all((run / s).is_file() for s in srcs)
    assert all(not s.startswith(("/", "file:", "http")) for s in srcs)
    # an edit is shown next to its original, with the change in activation
    assert 'class="pair"' in page and "edit: replace the dog with a cup" in page
    assert "edit changes the activation by −1.7" in page
    assert "<svg" in page  # the per-round activation chart
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp")), "written atomically"


def test_hypotheses_show_what_changed_since_the_round_before(tmp_path: Path) -> None:
    run = tmp_path / "run-changes"
    make_record(run, n_rounds=2)
    first, second = (s for _, s in sorted(_sections(render_report(run)).items()))
    assert "2 stated" in first and "was open" not in first and ">new<" not in first
    assert "3 changed since the round before" in second
    assert "was open" in _row(second, f"dog detector {EVIL}") and ">supported</span>" in _row(second,
                                                                                              f"dog detector {EVIL}")
    assert "was open" in _row(second, "cat detector") and ' class="muted"' in _row(second, "cat detector")
    assert ">new</span>" in _row(second, "dogs only on grass")


def test_model_written_text_is_escaped(tmp_path: Path) -> None:
    run = tmp_path / "run2"
    make_record(run, label=EVIL)
    page = render_report(run)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "[LABEL] &lt;script&gt;" in page


def test_zero_rounds_renders(tmp_path: Path) -> None:
    run = tmp_path / "run3"
    make_record(run, n_rounds=0)
    page = write_report(run).read_text()
    assert "No experiment rounds were run" in page
    assert "Dataset exemplars" in page


def test_a_request_to_conclude_and_the_critics_answer(tmp_path: Path) -> None:
    run = tmp_path / "asked"
    early = RoundRecord(
        round=0,
        conclusion_requests=[Proposal(thoughts="the exemplars are all dogs", ready_to_conclude=True,
                                      hypotheses=[_hypothesis("dogs", confidence=0.7)])],
        critic=[CriticReport(round=0, satisfied=False, requests=["test 'dog' on 5 images"],
                             checks={"vetoed_conclusion": True})],
    )
    make_record(run, n_rounds=0, rounds=[early])
    section = _sections(render_report(run))[0]
    assert "Before any experiment" in section and "The scientist asked to conclude" in section
    assert "Leading hypothesis:" in section and "dogs" in section and "0.70" in section
    assert "sent the conclusion back" in section and "test &#x27;dog&#x27; on 5 images" in section


def test_failed_run_shows_error_and_collapsed_traceback(tmp_path: Path) -> None:
    run = tmp_path / "run4"
    failing = RoundRecord(
        round=2,
        proposal=Proposal(thoughts="try again", code="def run_experiment(system, tools):\n    foo\n"),
        observation=Observation(round=2, ok=False, text="the code failed",
                                error="NameError: name 'foo' is not defined",
                                traceback=f'Traceback (most recent call last):\n  File "<experiment>", line 2\n{EVIL}'),
    )
    record = make_record(run, n_rounds=1)
    record = record.model_copy(update={"rounds": [*record.rounds, failing], "status": "failed", "conclusion": None,
                                       "error": "RuntimeError: the scientist gave up",
                                       "traceback": "Traceback ...\nRuntimeError: the scientist gave up"})
    record.write(run)
    page = write_report(run).read_text()
    assert 'id="round-2"' in page and ">failed</span>" in page
    assert "NameError: name &#x27;foo&#x27; is not defined" in page
    assert re.search(r"<details><summary>traceback</summary><pre>Traceback \(most recent", page)
    assert "The run failed" in page and "the scientist gave up" in page
    assert "The run ended without a conclusion" in page
    assert "<script" not in page.lower()


def test_label_match_is_computed(tmp_path: Path) -> None:
    from aim_agent.report.model import labels_match

    assert labels_match("dog | leash", ["dog, only when a leash is present"])
    assert labels_match("dog OR car", ["dogs", "car"])
    assert not labels_match("dog | leash", ["dog"])
    run = tmp_path / "run5"
    make_record(run, ground_truth="cat")
    assert "labels do not match" in render_report(run)


# --------------------------------------------------------------------------- records that cannot be read


def test_missing_run_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no run directory"):
        write_report(tmp_path / "nope")


def test_a_run_without_result_json_is_a_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "killed"
    run.mkdir()
    (run / "log.jsonl").write_text('{"kind": "note", "text": "started", "round": 0}\n')
    with pytest.raises(MissingRunRecord) as caught:
        write_report(run)
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, RunRecordError)
    assert str(run / "result.json") in str(caught.value) and "--resume killed" in str(caught.value)
    assert not (run / "report.html").exists()


OLD_RESULT = {  # what AIM wrote before result.json had a schema (one flat dict)
    "run_id": "old", "status": "finished", "description": "dogs", "labels": ["dog"], "rounds": 3,
    "observations": [], "critic": [], "proposals": [], "tokens": {"total": 0},
}


@pytest.mark.parametrize("content, expected", [
    (json.dumps(OLD_RESULT), r"written by an older AIM \(no schema_version\); this AIM reads schema version 3"),
    (json.dumps({**OLD_RESULT, "schema_version": 99}), "written by schema version 99"),
    ('{"schema_version": 2, "run_id": "x", "stat', "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
    (json.dumps({"schema_version": 2, "run_id": "x", "status": "finished", "task": "t", "unit_label": "u",
                 "config": {"synthetic": "dog"}, "backends": {"scientist": "offline", "describer": "world",
                                                              "critic": "rules only"}, "rounds": "three"}),
     r"is malformed: rounds: Input should be a valid list"),
    (json.dumps({"schema_version": 2, "run_id": "x"}), r"is malformed: status: Field required; task: Field required"),
])
def test_old_or_malformed_result_json_is_a_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    run = tmp_path / "bad"
    run.mkdir()
    (run / "result.json").write_text(content)
    for read in (read_run_record, write_report, render_report):
        with pytest.raises(RunRecordError, match=expected) as caught:
            read(run)
        message = str(caught.value)
        assert message.startswith(f"the run record {run / 'result.json'} ") and "--resume bad" in message


def test_refuted_variants_of_one_idea_share_a_row(tmp_path: Path) -> None:
    """A context search leaves many refuted 'dog, only when X' hypotheses: one row names them all."""
    run = tmp_path / "variants"
    variants = [Hypothesis(id=f"C{k}", statement=f"dog, only when a {x} is present", concepts=["dog"],
                           kind="conditional", condition=x, status="refuted", confidence=0.1 + 0.01 * k)
                for k, x in enumerate(["leash", "tree", "hat", "ball"])]
    hyps = [_hypothesis("dog detector", "supported", 0.9), *variants]
    make_record(run, n_rounds=1, hypotheses=hyps)
    conclusion = render_report(run).split('id="conclusion"')[1].split("</section>")[0]
    table = conclusion.split("Hypotheses at the end")[1]
    assert table.count("<tr") == 1 + 2  # header, the supported one, one row for the four variants
    assert "dog, only when a ball is present" in table  # the best of them (highest confidence) is the row
    assert "and 3 more refuted variants (conditions: hat, tree, leash)" in table


def test_a_conclusion_the_critic_never_accepted_is_marked_forced(tmp_path: Path) -> None:
    from aim_agent.agent.nodes import VETO_CAP

    run = tmp_path / "vetoed"
    reason = f"{VETO_CAP}: the critic sent the conclusion back 2 time(s) and 1 request(s) remain open"
    make_record(run, n_rounds=1, forced=reason,
                conclusion=Conclusion(description="dogs", labels=["dog"], confidence=0.6, forced=True))
    page = render_report(run)
    assert "forced: the critic&#x27;s veto limit ran out" in page
    assert f"The conclusion was forced: {html.escape(reason)}" in page
