"""Work functions for sweep tests. Ray workers import them by name: the tests put this folder on PYTHONPATH."""

from __future__ import annotations

import os
import time
from typing import Any


def double(payload: dict[str, Any]) -> dict[str, Any]:
    """x -> 2x; or fail, sleep or kill the worker, as the payload asks."""
    if payload.get("fail"):
        raise RuntimeError(f"unit {payload['x']} failed on purpose")
    if payload.get("die"):
        os._exit(3)
    time.sleep(payload.get("sleep", 0))
    return {"x": payload["x"] * 2, "pid": os.getpid()}


def interpret_and_count(payload: dict[str, Any]) -> dict[str, Any]:
    """One real sweep unit, plus which worker ran it and how many models that worker had opened."""
    from aim_agent.sweep.worker import MEMO, interpret_unit

    return {"row": interpret_unit(payload), "pid": os.getpid(), "opened": MEMO.opened}
