"""What the world plugin registers through the hooks: scientist, unit source, models, commands, benchmark."""

from __future__ import annotations

import pytest

from aim_agent.plugins import SYNTHETIC, plugin_manager


def test_the_offline_scientist_is_a_plugin_scientist() -> None:
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.schema import Scientist
    from aim_world.scientist import OfflineScientist

    pm = plugin_manager()
    assert "offline" in pm.provider_names("scientist")
    scientist = pm.provider("scientist", "offline").make(RunConfig(synthetic="3"), None)
    assert isinstance(scientist, OfflineScientist) and isinstance(scientist, Scientist)
    assert scientist.name == "offline"


def test_synthetic_neurons_are_a_unit_source_by_name_or_index() -> None:
    from aim_world.neurons import list_synthetic

    specs = list_synthetic()
    source = plugin_manager().provider("units", SYNTHETIC)
    assert source.unit_names() == [s.name for s in specs]
    by_index = plugin_manager().unit_system(SYNTHETIC, " 3 ")
    by_name = plugin_manager().unit_system(SYNTHETIC, specs[3].name)
    assert by_index.unit == by_name.unit == 3
    assert by_index.ground_truth == specs[3].label  # kept in the probe, for the report only
    with pytest.raises(LookupError, match="no_such_neuron"):
        plugin_manager().unit_system(SYNTHETIC, "no_such_neuron")


def test_world_models_commands_and_benchmark_are_listed() -> None:
    from aim_agent.cli import build_parser
    from aim_agent.models.base import known_models

    names = {m["name"]: m for m in known_models()}
    assert {"world-cnn", "world-cnn-spawrious", "world-cnn-bias"} <= set(names)
    assert names["world-cnn"]["loader"] == "world" and isinstance(names["world-cnn"]["available"], bool)
    assert "world" in [c.name for c in plugin_manager().cli_commands()]
    assert "world" in [b.name for b in plugin_manager().benchmarks()]
    help_text = build_parser().format_help()
    assert "world" in help_text and "the embedded image world" in help_text
