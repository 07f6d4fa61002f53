"""The HTML report: renders any run directory, escapes model-written text, shows every round."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from aim_agent.images import image_id
from aim_agent.report import render_report, write_report

EVIL = '<script>alert("x")</script>'


def _image(run_dir: Path, shade: int) -> str:
    im = Image.new("RGB", (16, 16), (shade, 40, 200 - shade))
    iid = image_id(im)
    (run_dir / "images").mkdir(parents=True, exist_ok=True)
    im.save(run_dir / "images" / f"{iid}.png")
    return iid


def _entry(kind: str, round_: int, text: str = "", **fields) -> dict:
    return {"kind": kind, "text": text, "image_ids": [], "activations": [], "prompts": [], "descriptions": [],
            "round": round_, "data": {}, **fields}


def make_run(run_dir: Path, rounds: int = 2, *, label: str = "dog") -> Path:
    """A run folder as the graph writes it: result.json, log.jsonl, images/."""
    run_dir.mkdir(parents=True)
    ex = [_image(run_dir, 10 * k) for k in range(3)]
    log = [
        _entry("exemplars", 0, "top 3 dataset exemplars", image_ids=ex, activations=[2.0, 1.5, 1.0]),
        _entry("note", 0, "blind descriptions of the exemplars", image_ids=ex,
               descriptions=["a brown dog on grass", f"a dog {EVIL}", "a black dog"]),
    ]
    for r in range(1, rounds + 1):
        prompts = ["a dog on grass", "a dog on grass | edit: replace the dog with a cup", "a cup on snow",
                   f"a cat {EVIL}"] + [f"a dog in context {k}" for k in range(8)]
        shown = [_image(run_dir, 60 + 12 * r + k) for k in range(len(prompts))]
        acts = [1.8, 0.1, 0.05, -0.2] + [1.0 + 0.1 * k for k in range(8)]
        log.append(_entry("hypothesis", r, f"Next (screen): round {r} thoughts {EVIL}",
                          data={"hypotheses": [{"id": "H1", "statement": f"dog detector {EVIL}", "kind": "single",
                                                "status": "supported" if r > 1 else "open", "confidence": 0.8,
                                                "concepts": ["dog"]}]}))
        log.append(_entry("experiment", r, "calls: tools.text2image", image_ids=shown,
                          activations=acts, prompts=prompts,
                          data={"ok": True, "code": f"def run_experiment(system, tools):\n    return '{EVIL}'\n",
                                "tool_calls": [], "measurements": []}))
        log.append(_entry("critic", r, "satisfied", data={"round": r, "satisfied": r > 1,
                                                          "requests": [] if r > 1 else [f"test more {EVIL}"],
                                                          "checks": {"leading": "H1"}}))
    log.append(_entry("conclusion", rounds, "[DESCRIPTION]: dogs"))
    (run_dir / "log.jsonl").write_text("\n".join(json.dumps(e) for e in log) + "\n")
    result = {
        "run_id": run_dir.name, "task": "what does the unit detect?", "unit": "unit 3 of layer conv4 of world-cnn",
        "config": {"model": "world-cnn", "layer": "conv4", "unit": 3, "mode": "code",
                   "backend": {"provider": "offline"}},
        "ground_truth": "dog", "label_match": True,
        "conclusion": {"description": f"Selective for dogs {EVIL}", "labels": [label], "confidence": 0.9,
                       "evidence": [f"AUC 1.00 {EVIL}"], "forced": False},
        "hypotheses": [{"id": "H1", "statement": "dog detector", "kind": "single", "status": "supported",
                        "confidence": 0.9}],
        "usage": [{"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.0012}],
        "wall_time_s": 12.5,
    }
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir


def test_writes_a_complete_page(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run1", rounds=3)
    path = write_report(run)
    assert path == run / "report.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for r in (1, 2, 3):
        assert f'id="round-{r}"' in page
    assert "unit 3 of layer conv4 of world-cnn" in page
    assert "[LABEL] dog" in page and "labels match" in page
    assert "1,500" in page  # tokens
    assert "Ground truth" in page
    # images are linked relatively and exist on disk
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs and all((run / s).is_file() for s in srcs)
    assert all(not s.startswith(("/", "file:", "http")) for s in srcs)
    # an edit is shown next to its original, with the change in activation
    assert 'class="pair"' in page and "edit: replace the dog with a cup" in page
    assert "<svg" in page  # the per-round activation chart
    assert not list(run.glob("*.tmp")), "written atomically, no temporary file left behind"


def test_model_written_text_is_escaped(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run2", label=EVIL)
    page = render_report(run)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "[LABEL] &lt;script&gt;" in page


def test_zero_rounds_renders(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run3", rounds=0)
    page = write_report(run).read_text()
    assert "No experiment rounds were run" in page
    assert "Dataset exemplars" in page


def test_failed_run_without_result_renders(tmp_path: Path) -> None:
    run = tmp_path / "crashed"
    run.mkdir()
    (run / "log.jsonl").write_text('{"kind": "note", "text": "started", "round": 0}\n{"kind": "experi')
    page = write_report(run).read_text()
    assert "failed" in page and "result.json is missing" in page
    assert "The run ended without a conclusion" in page


def test_failed_round_shows_error_and_collapsed_traceback(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run4", rounds=1)
    log = (run / "log.jsonl").read_text().splitlines()
    log.append(json.dumps(_entry("hypothesis", 2, "try again")))
    log.append(json.dumps(_entry("experiment", 2, "the code failed", data={
        "ok": False, "error": "NameError: name 'foo' is not defined", "measurements": [],
        "traceback": f"Traceback (most recent call last):\n  File \"<experiment>\", line 2\n{EVIL}"})))
    (run / "log.jsonl").write_text("\n".join(log) + "\n")
    result = json.loads((run / "result.json").read_text())
    result.update(error="the run failed: NameError", traceback="Traceback ...", conclusion=None, status="failed")
    (run / "result.json").write_text(json.dumps(result))
    page = write_report(run).read_text()
    assert 'id="round-2"' in page
    assert "NameError: name &#x27;foo&#x27; is not defined" in page
    assert re.search(r"<details><summary>traceback</summary><pre>Traceback", page)
    assert "<script" not in page.lower()


def test_missing_run_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no run directory"):
        write_report(tmp_path / "nope")


def test_label_match_is_computed_when_the_result_has_none(tmp_path: Path) -> None:
    from aim_agent.report.model import labels_match

    assert labels_match("dog | leash", ["dog, only when a leash is present"])
    assert labels_match("dog OR car", ["dogs", "car"])
    assert not labels_match("dog | leash", ["dog"])
    run = make_run(tmp_path / "run5")
    result = json.loads((run / "result.json").read_text())
    del result["label_match"]
    result["ground_truth"] = "cat"
    (run / "result.json").write_text(json.dumps(result))
    assert "labels do not match" in render_report(run)
