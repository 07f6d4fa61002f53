"""AIM as an MCP server: every experiment tool, the unit under study, runs, reports, the task prompt.

::

    from aim_agent.mcp_server import build_server, serve_stdio

    server = build_server()          # tools from aim_agent.tools + every plugin
    serve_stdio(server)              # or: aim mcp / aim mcp --http 127.0.0.1:8765

What a client gets:

- **tools**: every tool of :func:`aim_agent.tools.registry.all_tools` (input schema from its
  pydantic input model, description from its docstring, annotations from its flags, results
  as structured content with images as ``img_…`` ids plus the images as MCP image content);
  and the session tools ``new_session``, ``close_session``, ``list_models``, ``list_layers``,
  ``load_system``, ``list_log``, ``read_log``, ``start_interpret``, ``read_result``
  (``run_code`` too with ``enable_code=True``);
- **resources**: listed, ``aim://session/log`` (this session's experiment log, JSON) and
  the session's recent runs; as templates, ``aim://image/{id}`` (an image by id, PNG),
  ``aim://runs/{run_id}/report.html`` and ``aim://runs/{run_id}/result.json`` (runs this
  session started, in this process or an earlier one);
- **prompt** ``describe_unit``: the neuron-description task for the client's own model.

Each client has its own session (loaded system, experiment log, images, runs), see
:mod:`.sessions`; its handle (from ``load_system``) reaches it from a new connection or a
new server process, see :mod:`.handles`. Clients load only the models the operator offers
(:mod:`aim_agent.models.trust`).
Over HTTP every request needs the server's bearer token (:mod:`.transport`).
"""

from aim_agent.mcp_server.server import AimServer, ServerOptions, build_server, default_context_factory
from aim_agent.mcp_server.sessions import SESSION_META_KEY, McpSession
from aim_agent.mcp_server.state import AimMcpState
from aim_agent.mcp_server.transport import http_app, serve_http, serve_stdio

__all__ = [
    "SESSION_META_KEY",
    "AimMcpState",
    "AimServer",
    "McpSession",
    "ServerOptions",
    "build_server",
    "default_context_factory",
    "http_app",
    "serve_http",
    "serve_stdio",
]
