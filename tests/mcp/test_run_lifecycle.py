"""start_interpret runs outlive a stdio client's disconnect; a server stopped first records them as interrupted.

``aim mcp`` runs as a subprocess driven by plain JSON-RPC lines, so the test decides when
stdin closes and when a signal comes (the SDK's own client kills the server 2 s after it
closes stdin). The runs are real: the offline scientist on a synthetic neuron of the world.
"""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest
from aim_testing import HANG_S as CHILD_HANG_S
from aim_testing import wait_for
from mcp_http import AIM, env

pytest.importorskip("aim_world.neurons")

#: seconds after which a wait counts as a hang: never a speed expectation. Each wait here ends on its event (an
#: answer line, the server's exit): the run is a whole agent run in a child process (start-up with torch,
#: langgraph and the world's fonts on a cold cache, exemplars, the sandbox's own Python for the round), which a
#: loaded CI machine once stretched from under a minute to 28 minutes, so twice a child process's hang limit
HANG_S = 2.0 * CHILD_HANG_S
pytest.importorskip("aim_agent.agent.runner")


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    from aim_world.datasets import write_dataset

    return write_dataset(tmp_path_factory.mktemp("exemplars") / "world-12", 12, seed=1, size=112)


class RawClient:
    """Just enough MCP over a subprocess's stdin/stdout: initialize, call a tool, hang up."""

    def __init__(self, cwd: Path, dataset: Path) -> None:
        self.log = open(cwd / "server.log", "w")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [AIM, "mcp", "--runs-dir", str(cwd / "runs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=cwd,
            # one torch thread: on a machine busier than its cores, torch's parallel regions wait at every operation
            # for a worker thread the scheduler has not run yet, and the run slows down many times over
            env=env(AIM_EXEMPLAR_DATASET=str(dataset), AIM_CACHE=str(cwd / "cache"), OMP_NUM_THREADS="1"),
        )
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "raw", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict) -> None:
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def request(self, method: str, params: dict, timeout: float = HANG_S) -> dict:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = self.process.stdout.readline()
            if not line:
                break
            message = json.loads(line)
            if message.get("id") == self.next_id:
                return message["result"]
        raise AssertionError(f"no answer to {method}")

    def start_run(self) -> str:
        result = self.request("tools/call", {"name": "start_interpret", "arguments": {
            "synthetic": "0", "backend": "offline", "max_rounds": 1}})
        assert not result.get("isError"), result
        return result["structuredContent"]["run_id"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(CHILD_HANG_S)
        self.log.close()


@pytest.mark.slow
def test_a_run_outlives_the_stdio_disconnect(tmp_path, small_dataset):
    client = RawClient(tmp_path, small_dataset)
    try:
        run_id = client.start_run()
        client.process.stdin.close()  # the client hangs up at once
        assert client.process.wait(HANG_S) == 0  # the server stayed until its run was done, then left
    finally:
        client.close()
    run_dir = tmp_path / "runs" / run_id
    result = json.loads((run_dir / "result.json").read_text())
    assert result.get("conclusion") or result.get("description"), result
    record = json.loads((run_dir / "mcp-run.json").read_text())
    assert record["status"] == "finished" and record["run_id"] == run_id
    assert "waiting for 1 run(s) to finish" in (tmp_path / "server.log").read_text()


@pytest.mark.slow
def test_a_stopped_server_records_its_run_as_interrupted_and_resumable(tmp_path, small_dataset):
    client = RawClient(tmp_path, small_dataset)
    try:
        run_id = client.start_run()
        run_dir = tmp_path / "runs" / run_id
        assert wait_for(lambda: (run_dir / "run.json").exists(), hang_s=HANG_S)  # what --resume reads
        client.process.send_signal(signal.SIGTERM)  # what an MCP client does after its grace period
        assert client.process.wait(HANG_S) == 128 + signal.SIGTERM
    finally:
        client.close()
    record = json.loads((run_dir / "mcp-run.json").read_text())
    assert record["status"] == "interrupted"
    assert record["resume"] == f"aim interpret --resume {run_id} --runs-dir {tmp_path / 'runs'}"
    assert (run_dir / "run.json").exists() and not (run_dir / "result.json").exists()
    assert f"run {run_id} interrupted" in (tmp_path / "server.log").read_text()
