"""The Python entry point: a session over a synthetic neuron with the world providers."""

from __future__ import annotations

import importlib

from aim_agent.session import make_context, make_tools


def test_python_session_runs_maia_style_experiments():
    neurons = importlib.import_module("aim_world.neurons")
    system = neurons.synthetic_system("mono_dog")
    tools = make_tools(make_context(system))
    images = tools.text2image(["a dog on grass", "a car on a road"])
    acts, overlays = system.neuron(images)
    assert acts[0] > 0.3 and acts[1] < 0.1
    description = tools.describe_images(overlays[:1])[0]
    assert "dog" in description
    pairs, prompts = tools.edit_images(["a dog on grass"], ["replace the dog with a cat"])
    edited_acts, _ = system.neuron(pairs)
    assert edited_acts[0] > 0.3 and edited_acts[1] < 0.1 and prompts[1] == "replace the dog with a cat"
    assert "mono_dog" not in dir(tools)  # tools expose tool names only
