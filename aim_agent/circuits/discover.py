"""``aim circuit``: the upstream units that drive a unit, what each one detects, and whether each edge is causal.

:func:`discover_circuit`

1. takes the unit's top dataset exemplars (the images on which it fires);
2. ranks every upstream unit (the previous layer's channels, or an SAE's latents on a chosen
   layer) by attribution on those images, and keeps the top ``top``;
3. ablates each of them alone, then all together, and measures the unit before and after:
   an edge is *verified* when ablating its source moves the unit the way attribution
   predicts (down for a positive score) by at least ``min_effect`` of its mean activation;
4. has the unit and each upstream unit interpreted by ``interpreter`` (``aim circuit`` passes
   one that runs the interpretation agent, :func:`aim_agent.agent.runner.run_interpret`, with
   the offline scientist or a VLM backend, its runs under ``runs/``).

:func:`write_circuit` saves ``circuit.json`` and, given the page
(:func:`aim_agent.report.circuit.render_circuit`: an SVG graph, labels, exemplars and each
edge's measured ablation effect), ``circuit.html``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from aim_agent.circuits.attribution import AblationMode, Method, ablate, attribute
from aim_agent.circuits.sites import CircuitError, model_of, prepare
from aim_agent.circuits.tools import upstream_site

Say = Callable[[str], None]
#: ``interpreter(node, layer, sae)`` explains one unit (``layer`` and ``sae`` as ``open_probe`` takes them) and
#: fills in the node's label, description, confidence, run id and report (or its error)
Interpreter = Callable[["CircuitNode", str, "str | None"], None]


@dataclass
class CircuitNode:
    """One unit of the circuit: the target, or an upstream unit."""

    key: str  # "target" or "u<unit>"
    role: str  # "target" | "upstream"
    layer: str  # as the probe names it (an SAE's latents: "conv4/sae1024")
    unit: int
    label: str | None = None
    description: str | None = None
    confidence: float | None = None
    exemplars: list[str] = field(default_factory=list)  # image files, relative to the report
    exemplar_activations: list[float] = field(default_factory=list)
    on_target: list[str] = field(default_factory=list)  # upstream: where it fires on the target's top exemplars
    on_target_activations: list[float] = field(default_factory=list)
    run_id: str | None = None
    report: str | None = None  # the interpretation's report, relative to the circuit report
    error: str | None = None
    mean_activation: float | None = None  # upstream: mean on the target's exemplars


@dataclass
class CircuitEdge:
    """An upstream unit -> the target, with its attribution and its measured ablation effect."""

    source: int
    rank: int
    score: float  # attribution, mean over the images
    share: float  # score / sum of |scores| of all upstream units
    before: float  # the target's mean activation, untouched
    after: float  # ... with the source ablated
    relative_change: float  # (after - before) / |before|
    verified: bool
    per_image_before: list[float] = field(default_factory=list)
    per_image_after: list[float] = field(default_factory=list)


@dataclass
class Circuit:
    """What ``aim circuit`` found; ``circuit.json`` is this, as data."""

    model: str
    layer: str
    unit: int
    sae: str | None
    target_layer: str  # the probe's layer name
    upstream: str  # what the upstream units are
    upstream_layer: str
    upstream_sae: str | None
    method: str
    ablation: str
    min_effect: float
    images: list[str]  # dataset files the measurements ran on
    nodes: list[CircuitNode]
    edges: list[CircuitEdge]
    joint: dict[str, Any]  # all top units ablated together
    total_score: float  # sum over all upstream units
    top_share: float  # share of the total |score| held by the top units
    seconds: float = 0.0
    backend: str = "offline"
    notes: list[str] = field(default_factory=list)

    def node(self, key: str) -> CircuitNode:
        return next(n for n in self.nodes if n.key == key)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _save_images(out: Path, stem: str, images: list[Image.Image]) -> list[str]:
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        name = f"images/{stem}-{i}.png"
        image.convert("RGB").save(out / name)
        names.append(name)
    return names


def discover_circuit(
    model: str,
    layer: str,
    unit: int,
    *,
    sae: str | None = None,
    upstream_layer: str | None = None,
    upstream_sae: str | None = None,
    top: int = 4,
    images_k: int = 24,
    method: Method = "grad_x_act",
    steps: int = 16,
    mode: AblationMode = "zero",
    min_effect: float = 0.05,
    interpreter: Interpreter | None = None,
    interpreted_by: str = "not interpreted",
    dataset: str | None = None,
    exemplars_shown: int = 6,
    out: str | Path = "circuit",
    progress: Say | None = None,
) -> Circuit:
    """Find, interpret and verify the circuit into unit ``unit`` of ``layer`` (see the module docstring)."""
    from aim_agent.exemplars import exemplars_for_system
    from aim_agent.models.probe import open_probe
    from aim_agent.system import System

    say = progress or (lambda _line: None)
    started = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if top < 1 or images_k < 1:
        raise CircuitError("--top and --images must be at least 1")
    probe = open_probe(model, layer, sae=sae)
    system = System(probe, unit)
    loaded, target = model_of(probe)
    upstream = upstream_site(loaded, target, upstream_layer, upstream_sae)
    say(f"target: unit {unit} of {probe.layer} ({model}); upstream: {upstream.describe()}")

    found = exemplars_for_system(system, k=images_k, dataset=dataset)
    if not found.sources:
        raise CircuitError(f"unit {unit} of {probe.layer} has no exemplars in the dataset")
    x = prepare(loaded, found.sources)
    result = attribute(loaded, x, target, unit, upstream, method=method, steps=steps, reduce=system.reduce)
    ranked = result.ranked(top)
    norm = float(result.scores.abs().sum()) or 1.0
    say(f"attribution ({method}) over {len(found.sources)} exemplars: top upstream units {ranked}")

    edges: list[CircuitEdge] = []
    for rank, u in enumerate(ranked):
        ab = ablate(loaded, x, target, unit, upstream, [u], mode=mode, reduce=system.reduce)
        score = float(result.scores[u])
        predicted_down = score > 0
        moved = ab.relative <= -min_effect if predicted_down else ab.relative >= min_effect
        edges.append(CircuitEdge(
            source=u, rank=rank + 1, score=round(score, 6), share=round(score / norm, 4),
            before=round(float(ab.before.mean()), 6), after=round(float(ab.after.mean()), 6),
            relative_change=round(ab.relative, 4), verified=bool(moved),
            per_image_before=[round(float(v), 4) for v in ab.before],
            per_image_after=[round(float(v), 4) for v in ab.after],
        ))
        say(f"ablate {u}: {ab.before.mean():.3g} -> {ab.after.mean():.3g} ({100 * ab.relative:+.1f}%)"
            + (" verified" if moved else ""))
    joint_ab = ablate(loaded, x, target, unit, upstream, ranked, mode=mode, reduce=system.reduce)
    joint = {"units": ranked, "before": round(float(joint_ab.before.mean()), 6),
             "after": round(float(joint_ab.after.mean()), 6), "relative_change": round(joint_ab.relative, 4)}

    upstream_probe_layer = upstream.name
    nodes = [CircuitNode(key="target", role="target", layer=probe.layer, unit=unit)]
    target_node = nodes[0]
    target_node.exemplars = _save_images(out, "target", found.images[:exemplars_shown])
    target_node.exemplar_activations = found.activations[:exemplars_shown]
    up_probe = open_probe(model, upstream.layer, sae=upstream_sae)
    for u in ranked:
        node = CircuitNode(key=f"u{u}", role="upstream", layer=upstream_probe_layer, unit=u,
                           mean_activation=round(float(result.upstream_mean[u]), 6))
        up_system = System(up_probe, u)
        ex = exemplars_for_system(up_system, k=exemplars_shown, dataset=dataset)  # also sets its threshold
        node.exemplars = _save_images(out, node.key, ex.images)
        node.exemplar_activations = ex.activations
        shown = found.sources[:exemplars_shown]
        response = up_system.activations(shown)
        node.on_target = _save_images(out, f"{node.key}-on-target", up_system.overlays(shown, response))
        node.on_target_activations = [round(float(a), 4) for a in response.activations]
        nodes.append(node)
    if interpreter is not None:
        for node in nodes:
            say(f"interpreting {node.key} (unit {node.unit} of {node.layer})")
            if node.role == "target":
                interpreter(node, layer, sae)
            else:
                interpreter(node, upstream.layer, upstream_sae)
            say(f"{node.key}: {node.label or node.error or 'no conclusion'}")

    circuit = Circuit(
        model=model, layer=layer, unit=unit, sae=sae, target_layer=probe.layer, upstream=upstream.describe(),
        upstream_layer=upstream.layer, upstream_sae=upstream_sae, method=method, ablation=mode, min_effect=min_effect,
        images=found.files, nodes=nodes, edges=edges, joint=joint, total_score=round(float(result.scores.sum()), 6),
        top_share=round(sum(abs(e.share) for e in edges), 4),
        backend=interpreted_by if interpreter is not None else "not interpreted",
        notes=[f"attribution and ablation on the unit's top {len(found.sources)} dataset exemplars",
               f"an edge is verified when ablating its source ({mode}) moves the unit by at least "
               f"{100 * min_effect:.0f}% in the direction the attribution predicts"],
    )
    circuit.seconds = round(time.monotonic() - started, 2)
    return circuit


def write_circuit(circuit: Circuit, out: str | Path, html: str | None = None) -> Path:
    """``circuit.json`` (and ``circuit.html`` when the page is given) in ``out``; returns the JSON's path."""
    from aim_agent.files import atomic_write

    out = Path(out)
    json_path = out / "circuit.json"
    atomic_write(json_path, json.dumps(circuit.to_json(), indent=2).encode(), fsync=False)
    if html is not None:
        atomic_write(out / "circuit.html", html.encode(), fsync=False)
    return json_path


__all__ = ["Circuit", "CircuitEdge", "CircuitNode", "Interpreter", "discover_circuit", "write_circuit"]
