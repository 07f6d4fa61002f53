"""The run report: one HTML page a researcher can send a colleague.

``write_report(run_dir)`` reads a run's typed record (``result.json``, see
:mod:`aim_agent.agent.record`) and its ``images/`` and writes ``report.html`` next to them
(atomically). Images are linked relatively, so the page works from disk as long as it stays
beside its ``images/`` folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from aim_agent.report.html import render
from aim_agent.report.model import ReportData, available_images, load_report_data

__all__ = ["ReportData", "load_report_data", "render_report", "write_report"]


def render_report(run_dir: Path) -> str:
    """The report page of a run directory, as a string."""
    run_dir = Path(run_dir)
    return render(load_report_data(run_dir), available_images(run_dir))


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    Works for any run that wrote its record: finished, failed, or stopped before the first round.
    A missing or unreadable ``result.json`` raises :class:`~aim_agent.agent.record.RunRecordError`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}: pass the folder of a run (runs/<id>)")
    page = render_report(run_dir)
    target = run_dir / "report.html"
    tmp = run_dir / f".report.html.{os.getpid()}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target
