"""The run report: one HTML page a researcher can send a colleague.

``write_report(run_dir)`` reads a run's typed record (``result.json``, see
:mod:`aim_agent.agent.record`) and its ``images/`` and writes ``report.html`` next to them
(atomically). Images are linked relatively, so the page works from disk as long as it stays
beside its ``images/`` folder.
"""

from __future__ import annotations

from pathlib import Path

from aim_agent.agent.record import read_run_record
from aim_agent.files import atomic_write
from aim_agent.report.html import render
from aim_agent.report.model import ReportData, available_images, load_report_data, report_data

__all__ = ["ReportData", "load_report_data", "render_report", "write_report"]


def render_report(run_dir: Path, *, ground_truth: bool = True) -> str:
    """The report page of a run directory, as a string.

    ``ground_truth=False`` leaves out a synthetic unit's answer (for an MCP client, who may be
    the scientist being measured).
    """
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    if not ground_truth:
        record = record.model_copy(update={"ground_truth": None})
    return render(report_data(record), available_images(run_dir))


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    Works for any run that wrote its record: finished, failed, or stopped before the first round.
    A missing or unreadable ``result.json`` raises :class:`~aim_agent.agent.record.RunRecordError`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}: pass the folder of a run (runs/<id>)")
    target = run_dir / "report.html"
    atomic_write(target, render_report(run_dir).encode("utf-8"), fsync=False)
    return target
