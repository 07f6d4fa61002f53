"""Circuits: which upstream units drive a unit, checked by ablation.

- :mod:`~aim_agent.circuits.sites`: a layer's channels or an SAE's latents as a place to read,
  replace and differentiate units;
- :mod:`~aim_agent.circuits.attribution`: activation x gradient and integrated gradients;
  zero and mean ablation;
- :mod:`~aim_agent.circuits.tools`: the agent tools ``attribute`` and ``ablate``;
- :mod:`~aim_agent.circuits.discover`: ``aim circuit``: top upstream units, interpreted,
  each edge verified by ablation, written as an HTML report with a graph and as JSON.
"""

from aim_agent.circuits.attribution import Ablation, Attribution, ablate, attribute, reduce_maps
from aim_agent.circuits.sites import ChannelSite, CircuitError, LatentSite, Site, model_of, previous_layer, run_sites

__all__ = ["Ablation", "Attribution", "ChannelSite", "CircuitError", "LatentSite", "Site", "ablate", "attribute",
           "model_of", "previous_layer", "reduce_maps", "run_sites"]
