"""``DIR/sweep.sqlite``: one row per unit, written as each unit finishes.

The driver is the only writer. Every row is one transaction in WAL mode, so a sweep killed at any
moment leaves every finished unit's row whole and none half-written; readers (``aim sweep
--export``, the index) can read while a sweep runs. A rerun skips the units whose status is
``finished`` and runs the others again (failed, timed out, or never started).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

STORE_FILE = "sweep.sqlite"
UnitStatus = Literal["finished", "stopped", "failed", "timeout"]
#: the table's columns, in order (the export's columns too)
COLUMNS: tuple[str, ...] = ("unit", "label", "description", "confidence", "rounds", "seconds", "tokens", "cost",
                            "status", "error", "forced", "run_id", "report", "thumbnails", "finished_at", "attempts")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    unit TEXT PRIMARY KEY, label TEXT NOT NULL, description TEXT NOT NULL, confidence REAL,
    rounds INTEGER NOT NULL, seconds REAL NOT NULL, tokens INTEGER NOT NULL, cost REAL,
    status TEXT NOT NULL, error TEXT, forced TEXT, run_id TEXT NOT NULL, report TEXT,
    thumbnails TEXT NOT NULL, finished_at TEXT NOT NULL, attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class UnitRow(BaseModel):
    """What a sweep keeps of one unit's run (paths are relative to the sweep folder)."""

    unit: str
    label: str = ""
    description: str = ""
    confidence: float | None = None
    rounds: int = 0
    seconds: float = 0.0
    tokens: int = 0
    cost: float | None = Field(default=None, description="USD; None where a model's price is unknown")
    status: UnitStatus = "failed"
    error: str | None = None
    forced: str | None = None
    run_id: str = ""
    report: str | None = None
    thumbnails: list[str] = Field(default_factory=list, description="the first exemplar overlays")
    finished_at: str = ""
    attempts: int = 1


class SweepStore:
    """The sweep's SQLite table (opened per call: cheap, and safe to use from any thread)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / STORE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA synchronous=NORMAL")
            with db:  # one transaction: committed whole, or rolled back
                yield db

    # ------------------------------------------------------------------ the sweep's identity

    def check_spec(self, spec: dict[str, Any]) -> None:
        """Remember what this sweep is; refuse a different one in the same folder."""
        text = json.dumps(spec, sort_keys=True)
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key='spec'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('spec', ?)", (text,))
                return
        stored = json.loads(row[0])
        if stored != json.loads(text):
            differ = sorted(k for k in set(stored) | set(spec) if stored.get(k) != spec.get(k))
            raise ValueError(f"{self.path.parent} holds another sweep (its {', '.join(differ)} differ): choose "
                             "another folder, or delete that one to start again")

    # ------------------------------------------------------------------ rows

    def put(self, row: UnitRow) -> None:
        """Insert or replace one unit's row (one transaction); ``attempts`` counts the runs of the unit."""
        values = row.model_dump()
        values["thumbnails"] = json.dumps(row.thumbnails)
        with self._connect() as db:
            before = db.execute("SELECT attempts FROM units WHERE unit=?", (row.unit,)).fetchone()
            values["attempts"] = (before[0] + 1) if before else 1
            db.execute(f"INSERT OR REPLACE INTO units ({', '.join(COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(COLUMNS))})", [values[c] for c in COLUMNS])
            # what every attempt spent (a retried unit's row is replaced; its earlier spending is not forgotten)
            spent = self._spent(db)
            spent = {"tokens": spent["tokens"] + row.tokens, "cost": spent["cost"] + (row.cost or 0.0)}
            db.execute("INSERT OR REPLACE INTO meta VALUES ('spent', ?)", (json.dumps(spent),))

    def rows(self, units: Sequence[str] | None = None) -> list[UnitRow]:
        """Every row (or those of ``units``, in that order)."""
        with self._connect() as db:
            found = [self._row(r) for r in db.execute(f"SELECT {', '.join(COLUMNS)} FROM units ORDER BY rowid")]
        if units is None:
            return found
        by_unit = {r.unit: r for r in found}
        return [by_unit[u] for u in units if u in by_unit]

    def finished(self) -> set[str]:
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT unit FROM units WHERE status='finished'")}

    def totals(self) -> dict[str, float]:
        """Tokens and known cost (USD) of every unit run so far, retries included: what the sweep's budgets count."""
        with self._connect() as db:
            return self._spent(db)

    @staticmethod
    def _spent(db: sqlite3.Connection) -> dict[str, float]:
        row = db.execute("SELECT value FROM meta WHERE key='spent'").fetchone()
        data = json.loads(row[0]) if row else {}
        return {"tokens": float(data.get("tokens", 0)), "cost": float(data.get("cost", 0.0))}

    @staticmethod
    def _row(values: Sequence[Any]) -> UnitRow:
        data = dict(zip(COLUMNS, values, strict=True))
        data["thumbnails"] = json.loads(data["thumbnails"] or "[]")
        return UnitRow.model_validate(data)
