"""Sweep tests: one local Ray for the tests that need it (module-scoped, shut down after)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world exemplar dataset: the sweeps' exemplar pass takes seconds, not minutes."""
    from aim_world.datasets import write_dataset

    return Path(write_dataset(tmp_path_factory.mktemp("sweep-world") / "world-40", 40, seed=5, size=64))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray with 2 CPUs, no dashboard and no usage statistics, imported as ``aim sweep`` imports it;
    workers can import sweep_fakes."""
    from aim_agent.sweep.engine import SweepUnavailable, import_ray, local_ray

    try:
        ray = import_ray()
    except SweepUnavailable:
        pytest.skip("Ray is not installed: pip install 'aim-agent[sweep]' (make test installs it)")
    before = os.environ.get("PYTHONPATH")
    # Ray workers inherit this environment; they import work functions by name
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), before) if p)
    cluster = local_ray(ray, 2)  # as `aim sweep` starts one: loopback only, a fresh token
    try:
        cluster.__enter__()
    except Exception as exc:  # no shared memory, no sockets: a machine where Ray cannot run
        pytest.skip(f"Ray cannot start on this machine: {type(exc).__name__}: {exc}")
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
    try:
        yield ray
    finally:
        cluster.__exit__(None, None, None)
