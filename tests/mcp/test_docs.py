"""Every snippet of docs/mcp.md marked ``<!-- tested: tests/mcp/test_docs.py ... -->`` runs here, as
written: only the path of ``aim`` (a wrapper around this checkout's, with a small exemplar
dataset and the test's folders), the HTTP URL and the token are the test's own.
"""

from __future__ import annotations

import ast
import json
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aim_testing import HANG_S
from mcp import Client, StdioServerParameters
from mcp_http import AIM, env, http_server

pytest.importorskip("aim_world.datasets")

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "mcp.md"
CLIENT_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
MARKER = "<!-- tested: tests/mcp/test_docs.py"
DOC_AIM = ("/home/you/aim/.venv/bin/aim", ".venv/bin/aim")
DOC_URL = "http://127.0.0.1:8765/mcp"


def snippets() -> list[tuple[str, str]]:
    """(language, code) of each fenced block right after the marker, dedented."""
    found = []
    lines = DOC.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(MARKER):
            fence = lines[i + 1].strip()
            assert fence.startswith("```"), f"docs/mcp.md:{i + 2}: a fenced block must follow the marker"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
            found.append((fence[3:], textwrap.dedent("\n".join(lines[i + 2 : end]))))
    return found


def snippet(contains: str) -> str:
    matches = [code for _, code in snippets() if contains in code]
    assert len(matches) == 1, f"one tested snippet of docs/mcp.md mentions {contains!r}"
    return matches[0]


@pytest.fixture(scope="module")
def aim_command(tmp_path_factory) -> Path:
    """An ``aim`` for the snippets: this checkout's, over a dozen world images, in test folders."""
    from aim_world.datasets import write_dataset

    folder = tmp_path_factory.mktemp("docs")
    dataset = write_dataset(folder / "world-12", 12, seed=1, size=112)
    settings = {**{k: v for k, v in env().items() if k in ("PYTHONPATH", "AIM_CONFIG", "HF_HUB_OFFLINE")},
                "AIM_EXEMPLAR_DATASET": str(dataset), "AIM_CACHE": str(folder / "cache"),
                "AIM_RUNS_DIR": str(folder / "runs"), "XDG_DATA_HOME": str(folder / "data")}
    wrapper = folder / "aim"
    exports = "".join(f"[ -n \"${{{k}+set}}\" ] || {k}={_quote(v)}; export {k}\n"  # unless given
                      for k, v in settings.items())
    wrapper.write_text(f"#!/bin/sh\n{exports}exec {_quote(AIM)} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _ours(code: str, aim: Path) -> str:
    for path in DOC_AIM:
        code = code.replace(f'"{path}"', json.dumps(str(aim)))
    return code


def _run(python: Path | str, code: str, tmp_path: Path, **extra: str) -> list[float]:
    script = tmp_path / "snippet.py"
    script.write_text(code)
    done = subprocess.run([str(python), str(script)], cwd=tmp_path, env={**env(), **extra},
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-4000:]
    printed = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert all(isinstance(x, float) for x in printed), printed
    return printed


def test_every_marked_snippet_is_one_of_these_tests():
    kinds = sorted(language for language, _ in snippets())
    assert kinds == ["json", "python", "python", "python"]


@pytest.mark.anyio
async def test_the_desktop_entry_starts_a_server(aim_command, tmp_path):
    entry = json.loads(next(code for language, code in snippets() if language == "json"))["mcpServers"]["aim"]
    assert entry["command"] in DOC_AIM and entry["args"] == ["mcp"]
    server_env = {**env(), **entry["env"], "AIM_RUNS_DIR": str(tmp_path / "runs")}  # the test's own folder
    params = StdioServerParameters(command=str(aim_command), args=entry["args"], env=server_env, cwd="/")
    async with Client(params) as client:
        assert len((await client.list_tools()).tools) == 20
        loaded = await client.call_tool("load_system", {"model": "world-cnn", "layer": "conv4", "unit": 7})
        assert not loaded.is_error, loaded.content[0].text
    assert any((tmp_path / "runs" / ".mcp-sessions").iterdir())


def test_the_sdk_snippet(aim_command, tmp_path):
    activations = _run(sys.executable, _ours(snippet("StdioServerParameters"), aim_command), tmp_path)
    assert len(activations) == 5 and activations == sorted(activations, reverse=True)


@pytest.mark.slow
def test_the_langchain_snippet_in_its_own_environment(aim_command, tmp_path):
    if not CLIENT_PYTHON.exists():
        pytest.skip("langchain-mcp-adapters lives in .venv-clients (it needs mcp<2): `make .venv-clients/.installed`")
    code = snippet("langchain_mcp_adapters")
    assert "asyncio.run(main())" in code and not re.search(r"^await ", code, re.MULTILINE)
    activations = _run(CLIENT_PYTHON, _ours(code, aim_command), tmp_path)
    assert len(activations) == 5 and activations == sorted(activations, reverse=True)


def test_the_http_snippet_opens_and_closes_its_session(tmp_path):
    code = snippet("streamable_http_client")
    assert code.index("new_session") < code.index("close_session")
    with http_server(tmp_path) as (url, token, _, _):
        activations = _run(sys.executable, code.replace(DOC_URL, url), tmp_path, AIM_MCP_TOKEN=token)
        assert len(activations) == 1


@pytest.mark.slow
def test_the_langgraph_agent_with_its_scripted_model_against_a_real_aim_mcp(aim_command, tmp_path):
    """docs/mcp.md's LangGraph agent, --chat-model scripted, on the world CNN (not only the test plugin)."""
    if not CLIENT_PYTHON.exists():
        pytest.skip("langgraph and langchain-mcp-adapters live in .venv-clients: `make .venv-clients/.installed`")
    script = Path(__file__).parent / "clients" / "langgraph_agent.py"
    done = subprocess.run([str(CLIENT_PYTHON), str(script), "--chat-model", "scripted", "--", str(aim_command), "mcp"],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["tool_calls"] == ["load_system", "text2image", "neuron"]
    assert re.search(r"\[LABEL\]: (red|green|blue)$", out["answer"]), out["answer"]
