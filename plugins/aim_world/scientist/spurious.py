"""The offline scientist's answer to MAIA's spurious-unit question: is a unit SELECTIVE (one class, robustly
across the training environments) or SPURIOUS (several classes, or something that is not the class)?

The experiment is MAIA's, kept inside the training domain the question names: every class drawn on every
training environment (several renders each), and every environment alone. Nothing here knows which
environment went with which class in training.

A class's *effect* on an environment is the unit's response to the class drawn there minus its response to
the environment alone; the unit's class is the one with the largest mean effect (its *strength*).

- SPURIOUS when a second class has at least :data:`ACTIVE` of that strength, when the environments alone
  differ by that much, or when the class's effect falls below it on some environment (MAIA: "if you are ever
  unsure, lean towards SPURIOUS").
- SELECTIVE otherwise: one class drives the unit on every environment, and nothing else does.
"""

from __future__ import annotations

import statistics

from aim_agent.eval.tasks import Observation, TaskAnswer, TaskQuestion

RENDERS = 3  # seeds per prompt
ACTIVE = 0.5  # a response counts when it reaches this share of the best class's mean response


def on(environment: str) -> str:
    return f"on {environment}"


def answer_spurious(question: TaskQuestion) -> TaskAnswer:
    """Measure classes x environments and environments alone; apply MAIA's criteria (module docstring)."""
    classes, environments = question.classes, question.domain or ("plain",)
    cells = {(c, e): f"a {c} {on(e)}" for c in classes for e in environments}
    alone = {e: f"a {e}" for e in environments}
    prompts = [*cells.values(), *alone.values()]
    values: dict[str, list[float]] = {p: [] for p in prompts}
    evidence: list[Observation] = []
    for seed in range(RENDERS):
        images = question.generate(prompts, seed)
        acts = question.system.activations(images).activations
        for prompt, image, act in zip(prompts, images, acts, strict=True):
            values[prompt].append(float(act))
            if seed == 0:
                evidence.append(Observation(prompt, round(float(act), 4), image))
    mean = {p: statistics.fmean(v) for p, v in values.items()}
    # a class's effect on an environment: the unit with the class there minus the environment alone
    effect = {(c, e): mean[cells[c, e]] - mean[alone[e]] for c in classes for e in environments}
    by_class = {c: statistics.fmean(effect[c, e] for e in environments) for c in classes}
    best = max(classes, key=lambda c: by_class[c])
    strength = by_class[best]
    if strength <= 0:
        return TaskAnswer("SPURIOUS", "no class adds to what the environments alone do", evidence=evidence)
    floor = ACTIVE * strength
    others = {c: by_class[c] for c in classes if c != best}
    env_alone = {e: mean[alone[e]] for e in environments}
    env_range = max(env_alone.values()) - min(env_alone.values())
    weak_envs = [e for e in environments if effect[best, e] < floor]
    reasons = []
    second = [c for c, v in others.items() if v >= floor]
    if second:
        reasons.append(f"other classes drive it too ({', '.join(f'{c} +{others[c]:.2f}' for c in second)}; "
                       f"{best} +{strength:.2f} over the environment alone)")
    if env_range >= floor:
        reasons.append(f"the environment alone moves it by {env_range:.2f} "
                       f"({', '.join(f'{e} {v:.2f}' for e, v in env_alone.items())})")
    if weak_envs:
        reasons.append(f"{best} drives it only on some environments (weak on {', '.join(weak_envs)})")
    if reasons:
        return TaskAnswer("SPURIOUS", "; ".join(reasons), evidence=evidence)
    return TaskAnswer("SELECTIVE", f"{best} drives it on every environment (+{strength:.2f} over the environment "
                      f"alone on average); other classes add at most {max(others.values(), default=0.0):.2f} and "
                      f"the environments alone differ by {env_range:.2f}", selective_for=best, evidence=evidence)
