"""Circuits: which upstream units drive a unit, checked by ablation.

- :mod:`~aim_agent.circuits.sites`: a layer's channels or an SAE's latents as a place to read,
  replace and differentiate units;
- :mod:`~aim_agent.circuits.attribution`: activation x gradient and integrated gradients;
  zero and mean ablation;
- :mod:`~aim_agent.circuits.tools`: the agent tools ``attribute`` and ``ablate``;
- :mod:`~aim_agent.circuits.discover`: ``aim circuit``: top upstream units, interpreted,
  each edge verified by ablation, written as an HTML report with a graph and as JSON.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aim_agent.circuits.attribution import Ablation, Attribution, ablate, attribute, reduce_maps
    from aim_agent.circuits.sites import (
        ChannelSite,
        CircuitError,
        LatentSite,
        Site,
        model_of,
        previous_layer,
        run_sites,
    )

# loaded on first use (PEP 562): these pull torch in, and the tool registry imports this package
_WHERE = {name: "attribution" for name in ("Ablation", "Attribution", "ablate", "attribute", "reduce_maps")} | {
    name: "sites"
    for name in ("ChannelSite", "CircuitError", "LatentSite", "Site", "model_of", "previous_layer", "run_sites")
}

__all__ = ["Ablation", "Attribution", "ChannelSite", "CircuitError", "LatentSite", "Site", "ablate", "attribute",
           "model_of", "previous_layer", "reduce_maps", "run_sites"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'aim_agent.circuits' has no attribute {name!r}")
    return getattr(importlib.import_module(f"aim_agent.circuits.{_WHERE[name]}"), name)
