"""The neuron-description task, as an MCP prompt: the client's own model plays the scientist."""

from __future__ import annotations

from collections.abc import Sequence

TASK = """\
You are an interpretability scientist. Your subject is {subject}. Find out what this unit \
responds to, and say it in words a person can check.

How to work
1. {load_step}
2. Call dataset_exemplars first. Look at the overlay images: the bright, outlined region is \
where the unit fires. Use summarize_images / describe_images on them for a description from \
a describer that never sees your hypotheses.
3. Write down several competing hypotheses, not one. Prefer specific ones ("the red roof \
of a house") over vague ones ("architecture").
4. Test them with controlled experiments: text2image on prompts that contain the concept and \
prompts that do not (vary background, colour, size and position so no single image decides), \
then neuron on those images; edit_images to make pairs that differ in exactly one thing and \
compare the unit's activation within each pair. A concept is supported when images with it \
activate the unit clearly more than matched images without it.
5. Record every experiment with log_experiment (note what it tested and what it showed). \
Only logged results count as evidence.
6. Try hard to refute your favourite hypothesis; when the evidence is mixed, run another \
experiment instead of concluding. Do not rely on a handful of images.

Available tools: {tools}.

When you are done, answer in exactly this format:
[DESCRIPTION]: <one or two sentences: what the unit responds to, in which contexts, and what \
does not activate it>
[LABEL]: <a short label of at most five words>
"""


def neuron_task(
    model: str = "", layer: str = "", unit: str = "", synthetic: str = "", tools: Sequence[str] = ()
) -> str:
    """The task text for one unit (or a generic one when no unit is named)."""
    if synthetic:
        subject = f"the synthetic neuron {synthetic!r}"
        load_step = f"Call load_system with synthetic={synthetic!r}."
    elif model and layer and unit != "":
        subject = f"unit {unit} of layer {layer!r} of the vision model {model!r}"
        load_step = f"Call load_system with model={model!r}, layer={layer!r}, unit={unit}."
    else:
        subject = "one unit of a vision model"
        load_step = (
            "Pick the unit: list_models and list_layers show what exists; load it with load_system "
            "(model, layer, unit) or load_system(synthetic=...)."
        )
    return TASK.format(subject=subject, load_step=load_step, tools=", ".join(tools) or "see the tool list")
