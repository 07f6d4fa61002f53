"""`aim mcp` driven by clients that are not ours, the way they connect by default.

langchain-mcp-adapters 0.3.2 (pinned in tests/mcp/clients/requirements.txt) needs mcp<2, so it
lives in its own virtualenv, .venv-clients, which `make test` builds; its default ``get_tools()``
opens a new session, here a new stdio server process, for every call. The MCP Inspector CLI
is an npm package: its test runs when ``npx`` finds it installed (never from the network).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from aim_testing import HANG_S
from mcp_http import AIM, FAKE, env, http_server

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_langchain_mcp_adapters_per_call_sessions_keep_state_with_the_handle(tmp_path):
    if not CLIENT_PYTHON.exists():
        pytest.skip("langchain-mcp-adapters lives in .venv-clients (it needs mcp<2): `make .venv-clients/.installed`, "
                    "which `make test` runs, builds it")
    done = subprocess.run(
        [str(CLIENT_PYTHON), str(HERE / "clients" / "langchain_session.py"), AIM, *FAKE],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=HANG_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert {"load_system", "neuron", "text2image", "list_log", "read_result"} <= set(out["tools"])
    assert out["load_system_args"]["unit"]["type"] == "integer"  # a typed optional, not anyOf [int, null]
    # each call below ran in a new server process; the handle carried the unit, the images and the log
    neuron = out["neuron"]
    assert neuron["status"] == "success" and neuron["content"] == ["text", "image", "image"]
    acts = neuron["structured"]["activations"]
    assert acts[1] > 0.3 > acts[0]  # unit 1 of fake-color fires on green, not red
    assert out["logged"]["structured"]["entry"] == 1
    log = out["log"]["structured"]
    assert "unit 1 of layer relu" in log["system"] and [e["kind"] for e in log["entries"]] == ["note", "experiment"]
    assert out["without_handle"]["structured"] == {"system": None, "entries": []}  # no handle: a fresh session
    assert "red vs green" in out["resource_log"][0]
    assert out["resources"] == ["aim://session/log"]


@pytest.mark.slow
def test_the_langgraph_agent_of_the_docs_studies_a_unit_over_per_call_sessions(tmp_path):
    """docs/mcp.md's LangGraph agent (tests/mcp/clients/langgraph_agent.py), with a scripted model."""
    if not CLIENT_PYTHON.exists():
        pytest.skip("langgraph and langchain-mcp-adapters live in .venv-clients: `make .venv-clients/.installed`")
    done = subprocess.run(
        [str(CLIENT_PYTHON), str(HERE / "clients" / "langgraph_agent.py"), "--chat-model", "scripted",
         "--unit", "fake-color:relu:1", "--", AIM, *FAKE],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=HANG_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["tool_calls"] == ["load_system", "text2image", "neuron"]
    # the scripted model reads the activations the server measured: unit 1 of fake-color is the green unit
    assert out["answer"].endswith("[LABEL]: green")


NODE_MODULES = HERE / "clients" / "node_modules"
INSTALL = "`npm ci --prefix tests/mcp/clients` (pinned in its package.json)"


def test_mcp_inspector_cli_lists_resources_and_calls_tools(tmp_path):
    """Inspector 0.15 (Node 20) builds tool arguments from each property's top-level type."""
    cli = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
    node = shutil.which("node")
    if not cli.exists() or node is None:
        pytest.skip(f"the MCP Inspector CLI 0.15 is not installed (npm): {INSTALL}")

    def inspect(*args: str) -> dict:
        done = subprocess.run([node, str(cli), "--cli", AIM, *FAKE, *args], cwd=tmp_path, env=env(),
                              capture_output=True, text=True, timeout=HANG_S)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    tools = inspect("--method", "tools/list")["tools"]
    assert all(t["annotations"].get("destructiveHint") is not None for t in tools)
    resources = inspect("--method", "resources/list")["resources"]
    assert [r["uri"] for r in resources] == ["aim://session/log"]
    loaded = inspect("--method", "tools/call", "--tool-name", "load_system", "--tool-arg", "model=fake-color",
                     "--tool-arg", "layer=relu", "--tool-arg", "unit=1")
    assert not loaded.get("isError"), loaded
    handle = loaded["structuredContent"]["session"]
    log = inspect("--method", "tools/call", "--tool-name", "list_log", "--tool-arg", f"session={handle}")
    assert "unit 1 of layer relu" in log["structuredContent"]["system"]


def test_mcp_inspector_0_15_reaches_the_http_server_with_the_token_in_the_url(tmp_path):
    """Inspector 0.15 cannot send a header: --token-in-query lets it in; a wrong token shows the server's words."""
    cli = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
    node = shutil.which("node")
    if not cli.exists() or node is None:
        pytest.skip(f"the MCP Inspector CLI 0.15 is not installed (npm): {INSTALL}")

    def inspect(url: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([node, str(cli), "--cli", url, "--transport", "http", *args], cwd=tmp_path, env=env(),
                              capture_output=True, text=True, timeout=HANG_S)

    with http_server(tmp_path, "--token-in-query") as (url, token, _, _):
        listed = inspect(f"{url}?token={token}", "--method", "tools/list")
        assert listed.returncode == 0, listed.stderr[-3000:]
        assert "load_system" in {t["name"] for t in json.loads(listed.stdout)["tools"]}
        made = inspect(f"{url}?token={token}", "--method", "tools/call", "--tool-name", "new_session")
        assert json.loads(made.stdout)["structuredContent"]["session"].startswith("s_")
        refused = inspect(f"{url}?token=not-{token}", "--method", "tools/list")
        assert refused.returncode != 0 and "?token=<token> in the URL" in refused.stdout + refused.stderr


def test_mcp_inspector_2_strict_finds_no_schema_problem(tmp_path):
    """Inspector 2.12's --strict reports tool-schema portability problems; there are none."""
    cli = NODE_MODULES / "inspector-2" / "clients" / "launcher" / "build" / "index.js"
    node = NODE_MODULES / "node" / "bin" / "node"  # 2.x needs Node >= 22.19: the npm package 'node'
    if not cli.exists() or not node.exists():
        pytest.skip(f"the MCP Inspector CLI 2.12 and Node 22 are not installed (npm): {INSTALL}")
    done = subprocess.run(
        [str(node), str(cli), "--cli", "--strict", "-e", f"PYTHONPATH={env()['PYTHONPATH']}", AIM, *FAKE,
         "--enable-code", "--method", "tools/list"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=HANG_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout)["tools"]) >= 20
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr[-3000:]


def test_mcp_inspector_2_reaches_the_http_server_with_the_bearer_header(tmp_path):
    """Inspector 2.12 sends the token as a header (no --token-in-query needed) and calls a tool."""
    cli = NODE_MODULES / "inspector-2" / "clients" / "launcher" / "build" / "index.js"
    node = NODE_MODULES / "node" / "bin" / "node"
    if not cli.exists() or not node.exists():
        pytest.skip(f"the MCP Inspector CLI 2.12 and Node 22 are not installed (npm): {INSTALL}")
    with http_server(tmp_path) as (url, token, _, _):
        def inspect(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(node), str(cli), "--cli", url, "--transport", "http", *args], cwd=tmp_path,
                                  env=env(), capture_output=True, text=True, timeout=HANG_S)

        listed = inspect("--header", f"Authorization: Bearer {token}", "--method", "tools/list")
        assert listed.returncode == 0, listed.stderr[-3000:]
        assert len(json.loads(listed.stdout)["tools"]) >= 19
        made = inspect("--header", f"Authorization: Bearer {token}", "--method", "tools/call",
                       "--tool-name", "new_session")
        assert made.returncode == 0, made.stderr[-3000:]
        assert json.loads(made.stdout)["structuredContent"]["session"].startswith("s_")
        refused = inspect("--method", "tools/list")  # without it: 401, which 2.12 takes as a call for OAuth
        assert refused.returncode != 0 and "auth" in refused.stderr.lower()
