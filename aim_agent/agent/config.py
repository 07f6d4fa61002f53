"""The run configuration: everything needed to (re)build an interpretation run from scratch.

A :class:`RunConfig` is plain data. It is stored in the graph state and in ``run.json``, so a
killed run can be resumed in a new process: the heavy objects (model, providers, chat
clients) are rebuilt from it (:mod:`aim_agent.agent.runtime`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from aim_agent.agent.backends import BackendSpec
from aim_agent.agent.schema import AnswerName, Mode
from aim_agent.config import Settings

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RunConfig(Settings):
    """One interpretation run: the shared :class:`~aim_agent.config.Settings` (providers, plugins,
    sizes, where runs go), plus the unit, the backends, the mode and the budgets."""

    model_config = ConfigDict(extra="forbid")

    # the unit under study: a model layer unit, a synthetic neuron, or a System factory
    model: str | None = Field(default=None, description="model spec, as for `aim layers` (e.g. world-cnn)")
    layer: str | None = None
    unit: int | None = Field(default=None, ge=0)
    sae: str | None = Field(default=None, description="path of a sparse autoencoder: the unit is one of its latents")
    synthetic: str | None = Field(
        default=None, description="a synthetic neuron: NAME or index of a shipped one, or SOURCE:UNIT (fresh:s7_3)"
    )
    system_factory: str | None = Field(
        default=None, description="'module:callable' returning a System (custom units, tests)"
    )
    task: str | None = Field(default=None, description="the question; default: describe what the unit detects")
    answer: AnswerName = Field(
        default="describe", description="the final answer's form: describe (MAIA's [DESCRIPTION]/[LABEL]), or the "
        "model-level task's own (spurious, bias: aim eval)")

    # who does the work
    backend: BackendSpec | None = Field(default=None, description="the scientist; None: google_genai or offline")
    critic_backend: BackendSpec | None = Field(default=None, description="optional VLM that comments on evidence")
    mode: Mode = "code"

    # budgets
    max_rounds: int = Field(default=15, ge=1, le=500)
    max_tokens: int | None = Field(default=None, gt=0)
    max_cost: float | None = Field(default=None, gt=0, description="USD")
    max_seconds: float | None = Field(default=None, gt=0)

    # where and how
    run_id: str | None = None
    exemplars_k: int | None = Field(
        default=None, ge=1, le=100,
        description="dataset exemplars shown to the scientist; None: as many as the scientist asks for "
                    "(its exemplars_k attribute), else 15")
    code_timeout_s: float = Field(default=180.0, gt=0, description="wall-clock limit of one experiment's code")
    unsafe_sandbox: bool = Field(
        default=False, description="run code mode even where the sandbox has no isolation layer (docs/security.md)"
    )
    react_steps: int = Field(default=3, ge=0, le=20, description="tool-calling mode: follow-up turns per round")
    max_critic_vetoes: int = Field(default=2, ge=0, description="times the critic may send a conclusion back")
    max_prompt_images: int = Field(default=12, ge=0, description="images sent to the VLM per call")
    recent_observations: int = Field(default=3, ge=1, description="observations shown in full; older ones summarised")

    @model_validator(mode="after")
    def _one_unit(self) -> RunConfig:
        ways = [self.synthetic is not None, self.system_factory is not None, self.model is not None]
        if sum(ways) != 1:
            raise ValueError(
                "name exactly one unit: --model M --layer L --unit U, or --synthetic NAME "
                "(or a system_factory 'module:callable')"
            )
        if self.model is not None and (self.layer is None or self.unit is None):
            raise ValueError("--model needs --layer and --unit (list layers with `aim layers MODEL`)")
        if self.run_id is not None and not _RUN_ID.match(self.run_id):
            raise ValueError(f"run id {self.run_id!r} may hold only letters, digits, '_', '-' and '.'")
        return self

    def unit_label(self) -> str:
        if self.synthetic:
            return f"synthetic neuron {self.synthetic}"
        if self.system_factory:
            return f"unit from {self.system_factory}"
        latent = f" (latent of SAE {self.sae})" if self.sae else ""
        return f"unit {self.unit} of layer {self.layer} of {self.model}{latent}"

    def public(self) -> dict[str, Any]:
        """The config as JSON data (for run.json and result.json)."""
        return self.model_dump(mode="json")
