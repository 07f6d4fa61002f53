"""What the ``aim eval`` commands share: progress lines on stderr (all of them); for ``predictive|spurious|bias``
also the chat-model scientist's options, and the ending (write result.json, table.md and page.html; print the
table or the JSON; say where the files are). Not an evaluation itself: ``aim eval`` registers the ``eval_*``
modules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Say = Callable[[str], None]
LIMIT = 20_000  # images per split, units, draws: what fits in memory and a sitting


def progress(args: argparse.Namespace, command: str, *, quiet: bool | None = None) -> Say | None:
    """Progress lines on stderr, each prefixed ``aim eval COMMAND``; none when ``quiet`` (default: with
    ``--json``)."""
    if args.json if quiet is None else quiet:
        return None
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    return lambda line: err.print(f"[dim]aim eval {command}[/dim] {line}")


def finish(args: argparse.Namespace, data: dict[str, Any], markdown: str, page: str, *, table_ends: str) -> int:
    """Write the three files under ``args.out``; print ``result.json`` (``--json``) or the markdown up to the
    heading ``table_ends`` (the main table), and where the files went."""
    from rich.console import Console

    from aim_agent.eval.pages import write_outputs

    files = write_outputs(args.out, data, markdown, page)
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print(markdown.split(table_ends)[0].rstrip())
    Console(stderr=True, highlight=False).print(f"[dim]wrote {', '.join(str(f) for f in files)}[/dim]")
    return 0


def add_task_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and, for a chat model, the options of its runs (as ``aim interpret`` names them)."""
    group = parser.add_argument_group("the scientist")
    group.add_argument("--backend", default="offline", metavar="BACKEND",
                       help="offline (default: the world's rule-based scientist) or a chat model as for `aim interpret "
                       "--backend`: google_genai[:MODEL], openai[:MODEL], anthropic[:MODEL], ollama[:MODEL]; each unit "
                       "is then one interpretation run under OUT/runs")
    group.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server (vLLM) for --backend "
                       "openai:MODEL")
    group.add_argument("--mode", choices=("code", "tools"), default="tools",
                       help="chat model: experiments as tool calls (default) or as code in the sandbox")
    group.add_argument("--max-rounds", type=int, default=10, help="chat model: experiment rounds per unit (default 10)")
    group.add_argument("--max-tokens", type=int, default=None, help="chat model: tokens per unit")
    group.add_argument("--max-cost", type=float, default=None, help="chat model: estimated USD per unit")
    group.add_argument("--critic-backend", metavar="BACKEND",
                       help="chat model: a VLM that comments on the critic's checks")


def task_scientist(args: argparse.Namespace, say: Say | None) -> Any:
    """The scientist ``--backend`` names (an installed one ignores the chat-model options); a chat model's runs
    go to ``OUT/runs``."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.eval.tasks import task_scientist as named

    critic = BackendSpec.parse(args.critic_backend) if args.critic_backend else None
    return named(args.backend, runs_dir=Path(args.out) / "runs", base_url=args.base_url, mode=args.mode,
                 max_rounds=args.max_rounds, max_tokens=args.max_tokens, max_cost=args.max_cost,
                 critic_backend=critic, progress=say)
