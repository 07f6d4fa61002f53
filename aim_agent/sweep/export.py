"""``aim sweep --export csv|parquet|html``: the sweep's table as a file other tools read."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from aim_agent.files import atomic_write
from aim_agent.sweep.store import COLUMNS, STORE_FILE, SweepStore

FORMATS = ("csv", "parquet", "html")


def _records(out_dir: Path) -> list[dict[str, Any]]:
    if not (out_dir / STORE_FILE).exists():
        raise FileNotFoundError(f"no sweep in {out_dir}: {STORE_FILE} is missing (run `aim sweep ... --out {out_dir}`)")
    rows = SweepStore(out_dir).rows()
    return [{**r.model_dump(), "thumbnails": json.dumps(r.thumbnails)} for r in rows]


def export(out_dir: Path, fmt: str, path: Path | None = None) -> Path:
    """Write the sweep in ``out_dir`` as ``fmt`` (to ``path``, default ``out_dir/sweep.<fmt>``); the file."""
    out_dir = Path(out_dir)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "html":
        from aim_agent.sweep.index import write_index

        return write_index(out_dir, SweepStore(out_dir).rows(), title=f"aim sweep: {out_dir.name}")
    target = Path(path) if path else out_dir / f"sweep.{fmt}"
    records = _records(out_dir)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(records)
        atomic_write(target, buffer.getvalue().encode())
        return target
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("--export parquet needs pyarrow, which is not installed: pip install pyarrow "
                         "(or use --export csv)") from None
    table = pa.Table.from_pylist(records) if records else pa.table({c: [] for c in COLUMNS})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    atomic_write(target, sink.getvalue())
    return target
