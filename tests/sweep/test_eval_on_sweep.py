"""`aim eval synthetic` runs on the sweep engine: one worker in this process and two Ray workers give the same
labels and the same scores (the offline scientist is deterministic), and both leave a browsable sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aim_agent.agent.config import RunConfig
from aim_agent.eval.synthetic import run_eval
from aim_agent.sweep.store import SweepStore


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how the units ran: labels, rounds, tokens, scores and the tables (times aside)."""
    neurons = [{**u, "labels": {m: {k: v for k, v in label.items() if k != "seconds"}
                                for m, label in u["labels"].items()}} for u in summary["neurons"]]
    table = [{k: v for k, v in row.items() if k != "seconds"} for row in summary["table"]]
    return {"neurons": neurons, "table": table, "head_to_head": summary["head_to_head"], "judge": summary["judge"]}


def test_one_worker_in_process_and_two_ray_workers_score_the_same(local_ray: Any, tiny_world: Path,
                                                                   tmp_path: Path) -> None:
    template = RunConfig(synthetic="synthetic:placeholder", max_rounds=1, exemplar_dataset=str(tiny_world),
                         exemplars_k=4)
    runs = {workers: run_eval(set_name="fresh", seed=5, n=2, template=template, out_dir=tmp_path / f"w{workers}",
                              workers=workers).model_dump() for workers in (1, 2)}
    one, two = runs[1], runs[2]
    assert one["workers"] == 1 and two["workers"] == 2
    assert one["ran_now"] == two["ran_now"] == 2 and one["unevaluated"] == two["unevaluated"] == []
    assert _scores(one) == _scores(two)
    assert [u["labels"]["agent"]["label"] for u in two["neurons"]] and all(
        u["labels"]["agent"]["label"] for u in two["neurons"])
    for workers in (1, 2):
        rows = SweepStore(tmp_path / f"w{workers}").rows()
        assert [r.status for r in rows] == ["finished"] * 2
        assert (tmp_path / f"w{workers}" / "index.html").is_file()
