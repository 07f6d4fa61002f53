"""The concept scientist as a plugin (entry point ``concepts``): ``--backend concepts``."""

from __future__ import annotations

from typing import Any

from aim_agent.hookspecs import hookimpl


class ConceptScientistFactory:
    name = "concepts"

    def make(self, config: Any, runtime: Any) -> Any:
        from aim_agent.scientist import ConceptScientist

        return ConceptScientist()


@hookimpl
def aim_scientists() -> list[Any]:
    return [ConceptScientistFactory()]
