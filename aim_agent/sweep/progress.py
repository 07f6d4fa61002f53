"""The live line of a running sweep: done / failed / running, units per minute, cost so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aim_agent.sweep.store import UnitRow


class SweepProgress:
    """Counts what happens in this invocation and shows it as a rich progress bar (or not at all)."""

    def __init__(self, total: int, *, already: int = 0, spent_cost: float = 0.0, show: bool = True,
                 say: Callable[[str], None] | None = None) -> None:
        self.total, self.already = total, already
        self.done = self.failed = 0
        self.running: set[str] = set()
        self.cost = spent_cost
        self.tokens = 0
        self.started = time.monotonic()
        self._say = say
        self._bar: Any = None
        self._task: Any = None
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[dim]aim sweep[/dim]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True, highlight=False), transient=False)
            self._task = self._bar.add_task("sweep", total=total, completed=already, stats=self.stats())

    def __enter__(self) -> SweepProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self.tick()
            self._bar.stop()

    def units_per_minute(self) -> float:
        minutes = (time.monotonic() - self.started) / 60
        return (self.done + self.failed) / minutes if minutes > 0 else 0.0

    def stats(self) -> str:
        return (f"done {self.done + self.already} · failed {self.failed} · running {len(self.running)} · "
                f"{self.units_per_minute():.1f} units/min · ${self.cost:.4f}")

    def start(self, unit: str) -> None:
        self.running.add(unit)
        self.tick()

    def result(self, row: UnitRow) -> None:
        self.running.discard(row.unit)
        if row.status == "finished":
            self.done += 1
        else:
            self.failed += 1
        self.cost += row.cost or 0.0
        self.tokens += row.tokens
        line = (f"{row.unit}: {row.label or '(no label)'!r} ({row.status}, {row.rounds} rounds, {row.seconds:.1f} s)"
                + (f" {row.error[:160]}" if row.error else ""))
        if self._bar is not None:
            from rich.markup import escape

            self._bar.console.print(f"[dim]aim sweep[/dim] {escape(line)}", highlight=False)
        elif self._say is not None:
            self._say(line)
        self.tick()

    def tick(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.already + self.done + self.failed, stats=self.stats())
