"""The interpretation graph, for LangGraph tooling (``langgraph.json``).

``graph`` is compiled without a checkpointer (LangGraph's server brings its own). Start a run
with an input holding ``run_id`` and ``config`` (a :class:`aim_agent.agent.config.RunConfig` as
JSON) plus the fields of :func:`aim_agent.agent.runner.initial_state`; the nodes build the
model, providers and scientist from that config. From Python, use
:func:`aim_agent.agent.runner.run_interpret` instead.
"""

from aim_agent.agent.graph import build_graph

graph = build_graph()

__all__ = ["build_graph", "graph"]
