"""Attack tests: each builds the attack a review demonstrated and asserts it is blocked.

The MCP fakes (``aim_fake_plugin``) and the HTTP helpers (``mcp_http``) live in tests/mcp;
the attack building blocks in ``attacks``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "mcp"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
