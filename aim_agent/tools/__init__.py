"""Experiment tools: each defined once (``tools.core`` and plugins), exposed everywhere."""

from aim_agent.tools.base import AimImage, ToolContext, ToolError, ToolInput, ToolOutput, Tools, ToolSpec, tool
from aim_agent.tools.registry import all_tools

__all__ = ["AimImage", "ToolContext", "ToolError", "ToolInput", "ToolOutput", "ToolSpec", "Tools", "all_tools",
           "tool"]
