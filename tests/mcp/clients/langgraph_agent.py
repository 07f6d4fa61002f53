"""A LangGraph agent that studies a unit through AIM's MCP server (docs/mcp.md shows it).

    python langgraph_agent.py --chat-model google_genai:gemini-2.5-flash -- .venv/bin/aim mcp
    python langgraph_agent.py --chat-model scripted -- .venv/bin/aim mcp
    python langgraph_agent.py --unit fake-color:relu:1 -- .venv/bin/aim --plugin aim_fake_plugin mcp ...

The graph is LangGraph's tool loop: the chat model proposes tool calls, a ToolNode runs them
through langchain-mcp-adapters, and the results go back to the model until it answers. The
tools come from ``MultiServerMCPClient.get_tools()`` in its default mode, a new MCP session
(here a new stdio server) for every call, so the model passes the ``session`` handle that
``load_system`` returned to every later call. ``--chat-model scripted`` is a stand-in that
makes the same calls a model would (on any server: the unit is ``--unit MODEL:LAYER:UNIT``,
default world-cnn:conv4:7), so the tests run offline; any other value goes to LangChain's
``init_chat_model`` (package ``langchain`` and the provider's package).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_mcp_adapters.client import MultiServerMCPClient
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

TASK = (
    "Study unit {unit} of layer {layer} of the model {model}. Load it with load_system, pass the 'session' "
    "it returns to every later call, test images with text2image and neuron, then answer with "
    "[DESCRIPTION]: ... and [LABEL]: ..."
)


def build_agent(model: Any, tools: list[Any]) -> Any:
    """LangGraph's tool loop: model -> tools -> model ... until the model answers without a tool call."""
    bound = model.bind_tools(tools)

    async def scientist(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("scientist", scientist)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "scientist")
    graph.add_conditional_edges("scientist", tools_condition)
    graph.add_edge("tools", "scientist")
    return graph.compile()


class ScriptedScientist(BaseChatModel):
    """Offline stand-in for a chat model: the tool calls a model makes for TASK, reading each result."""

    unit: dict[str, Any]

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedScientist:  # type: ignore[override]
        return self

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        results = [m for m in messages if isinstance(m, ToolMessage)]

        def structured(name: str) -> dict[str, Any]:
            found = next(m for m in reversed(results) if m.name == name)
            return (found.artifact or {})["structured_content"]

        def call(name: str, args: dict[str, Any]) -> AIMessage:
            return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{len(results)}"}])

        if not results:
            reply = call("load_system", self.unit)
        elif len(results) == 1:
            handle = structured("load_system")["session"]
            reply = call("text2image", {"prompts": ["a red ball", "a green ball", "a blue ball"],
                                        "session": handle})
        elif len(results) == 2:
            reply = call("neuron", {"images": structured("text2image")["images"],
                                    "session": structured("load_system")["session"]})
        else:
            acts = structured("neuron")["activations"]
            colour = ["red", "green", "blue"][max(range(3), key=lambda i: acts[i])]
            reply = AIMessage(content=f"[DESCRIPTION]: fires on {colour} balls (activations {acts}).\n"
                                      f"[LABEL]: {colour}")
        return ChatResult(generations=[ChatGeneration(message=reply)])


async def main(chat_model: str, server: list[str], unit: dict[str, Any]) -> dict[str, Any]:
    client = MultiServerMCPClient(
        {"aim": {"transport": "stdio", "command": server[0], "args": server[1:], "env": dict(os.environ)}}
    )
    tools = await client.get_tools()
    if chat_model == "scripted":
        model: Any = ScriptedScientist(unit=unit)
    else:
        from langchain.chat_models import init_chat_model

        model = init_chat_model(chat_model)
    agent = build_agent(model, tools)
    final = await agent.ainvoke({"messages": [SystemMessage(TASK.format(**unit)), ("user", "Describe the unit.")]})
    calls = [m.name for m in final["messages"] if isinstance(m, ToolMessage)]
    return {"tool_calls": calls, "answer": final["messages"][-1].content}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chat-model", default="scripted", help="'scripted', or a spec for init_chat_model")
    parser.add_argument("--unit", default="world-cnn:conv4:7", help="MODEL:LAYER:UNIT to study")
    parser.add_argument("server", nargs="+", help="the command that starts `aim mcp` (after --)")
    args = parser.parse_args()
    model, layer, index = args.unit.rsplit(":", 2)
    unit = {"model": model, "layer": layer, "unit": int(index)}
    print(json.dumps(asyncio.run(main(args.chat_model, args.server, unit))))
