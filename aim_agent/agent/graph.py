"""The interpretation graph (LangGraph): the loop of hypotheses, experiments and criticism.

::

    START -> exemplars -> describe -> hypothesize --(experiment)--> experiment -> log -> critic
                                        ^   |                                               |
                                        |   +--(ready, nothing to run)--> critic            |
                                        +-------------------(continue)----------------------+
                                            hypothesize/critic --(cap reached or done)--> conclude -> END

Every node's update is checkpointed when the graph is compiled with a checkpointer; the runner
uses SQLite (``runs/<id>/checkpoint.sqlite``, thread id = run id), so ``aim interpret --resume``
continues a killed run from its last finished node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph

from aim_agent.agent import nodes
from aim_agent.agent.state import AgentState, allowed_modules


def build_graph(*, checkpointer: Any | None = None) -> Any:
    """The compiled interpretation graph. Pass the run's :class:`AgentRuntime` as ``context`` when invoking."""
    graph = StateGraph(AgentState)
    graph.add_node("exemplars", nodes.exemplars)
    graph.add_node("describe", nodes.describe)
    graph.add_node("hypothesize", nodes.hypothesize)
    graph.add_node("experiment", nodes.experiment)
    graph.add_node("log", nodes.log_results)
    graph.add_node("critic", nodes.critic)
    graph.add_node("conclude", nodes.conclude)
    graph.add_edge(START, "exemplars")
    graph.add_edge("exemplars", "describe")
    graph.add_edge("describe", "hypothesize")
    graph.add_conditional_edges("hypothesize", nodes.after_hypothesize, ["experiment", "critic", "conclude"])
    graph.add_edge("experiment", "log")
    graph.add_edge("log", "critic")
    graph.add_conditional_edges("critic", nodes.after_critic, ["hypothesize", "conclude"])
    graph.add_edge("conclude", END)
    return graph.compile(checkpointer=checkpointer, name="aim-interpret")


def serializer() -> Any:
    """The checkpoint serializer, allowed to rebuild exactly the state's pydantic models."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=allowed_modules())


def sqlite_checkpointer(path: Path) -> Any:
    """A SQLite checkpointer at ``path`` (the connection stays open for the life of the saver)."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    return SqliteSaver(conn, serde=serializer())
