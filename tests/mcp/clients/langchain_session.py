"""Drive `aim mcp` with langchain-mcp-adapters in its default mode: a new session (a new stdio
server process) for every call. Runs in .venv-clients (mcp 1.x); prints one JSON object.

    python langchain_session.py COMMAND [ARG...]   (the server command, e.g. .venv/bin/aim ... mcp)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from langchain_mcp_adapters.client import MultiServerMCPClient


async def main(command: str, args: list[str]) -> dict[str, Any]:
    client = MultiServerMCPClient(
        {"aim": {"transport": "stdio", "command": command, "args": args, "env": dict(os.environ)}}
    )
    out: dict[str, Any] = {}
    tools = {tool.name: tool for tool in await client.get_tools()}  # one session; each call opens its own
    out["tools"] = sorted(tools)
    out["load_system_args"] = tools["load_system"].args

    async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        message = await tools[name].ainvoke({"type": "tool_call", "id": name, "name": name, "args": arguments})
        artifact = message.artifact or {}
        return {"structured": artifact.get("structured_content"), "status": message.status,
                "content": message.content if isinstance(message.content, str) else
                [block.get("type") for block in message.content]}

    loaded = await call("load_system", {"model": "fake-color", "layer": "relu", "unit": 1})
    handle = loaded["structured"]["session"]
    made = await call("text2image", {"prompts": ["a red square", "a green square"], "session": handle})
    ids = made["structured"]["images"]
    out["neuron"] = await call("neuron", {"images": ids, "session": handle})
    out["logged"] = await call("log_experiment", {"note": "red vs green", "images": ids, "session": handle})
    out["log"] = await call("list_log", {"session": handle})
    out["without_handle"] = await call("list_log", {})
    blobs = await client.get_resources("aim", uris=[f"aim://session/log?session={handle}"])
    out["resource_log"] = [blob.as_string() for blob in blobs]
    async with client.session("aim") as session:
        init = await session.list_resources()
        out["resources"] = [str(r.uri) for r in init.resources]
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2:]))))
