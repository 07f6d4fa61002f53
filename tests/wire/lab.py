"""The scripted VLM behind the loopback servers: a scientist, a blind describer and a critic for the
redness unit of ``aim_test_fakes`` (unit 0 fires on red pixels).

It answers from what actually arrived on the wire: the describer names the colour it finds in the
centre of each decoded PNG, the scientist reads image ids out of tool results and activations out
of the printed experiment output, so a session only reaches its conclusion when AIM's requests
carried the images, the results and the formats the provider documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aim_test_fakes import COLORS, CONTROL_PROMPTS, RED_PROMPTS
from loopback import Call, Reply, Request

from aim_agent.agent.prompts import CRITIC_SYSTEM, DESCRIBER_SYSTEM

DESCRIBER_MARK = DESCRIBER_SYSTEM.splitlines()[0]
CRITIC_MARK = CRITIC_SYSTEM.splitlines()[0]
FINAL_MARK = "Give your final answer now"
USAGE = {"scientist": (1200, 300), "describer": (600, 40), "critic": (400, 30)}
IDS = re.compile(r"img_[0-9a-f]{20}")


def role_of(req: Request) -> str:
    if DESCRIBER_MARK in req.system:
        return "describer"
    if CRITIC_MARK in req.system:
        return "critic"
    return "scientist"


def colour_name(image: object) -> str:
    """The named colour nearest to the centre pixel of an image."""
    arr = np.asarray(image, dtype=np.float32)
    centre = arr[arr.shape[0] // 2, arr.shape[1] // 2]
    return min(COLORS, key=lambda c: float(np.abs(np.array(COLORS[c]) - centre).sum()))


def rounds_seen(text: str) -> int:
    found = [int(n) for n in re.findall(r"# Round (\d+) results", text)]
    found += [int(n) for n in re.findall(r"^round (\d+): ", text, re.M)]
    return max(found, default=0)


HYPOTHESES = (
    "[HYPOTHESIS h1] (concepts: red | kind: single | confidence: {c1} | status: open) the unit fires on red objects\n"
    "[HYPOTHESIS h2] (concepts: ball | kind: single | confidence: 0.2 | status: open) the unit fires on balls"
)

THIN_CODE = f'''[THOUGHTS]: The exemplars are red objects. First a quick look at two red images.
{HYPOTHESES.format(c1=0.6)}
[CODE]:
```python
def run_experiment(system, tools):
    import os
    print("sandbox env:", sorted(k for k in os.environ if "KEY" in k or "TOKEN" in k))
    prompts = {RED_PROMPTS[:2]!r}
    images = tools.text2image(prompts)
    acts, overlays = system.neuron(images)
    print("red activations", [round(a, 4) for a in acts])
    return dict(zip(prompts, acts))
```'''

GOOD_CODE = f'''[THOUGHTS]: Red fired. Now red objects against other colours on the same backgrounds.
{HYPOTHESES.format(c1=0.8)}
[CODE]:
```python
def run_experiment(system, tools):
    prompts = {RED_PROMPTS + CONTROL_PROMPTS!r}
    images = tools.text2image(prompts)
    acts, overlays = system.neuron(images)
    tools.log_experiment(acts, overlays, prompts, note="red vs other colours")
    print("red mean %.4f control mean %.4f" % (sum(acts[:5]) / 5, sum(acts[5:]) / 3))
    return dict(zip(prompts, acts))
```
[CONCLUDE]'''


@dataclass
class RedLab:
    """The scripted VLM. ``overrides`` answer first: ``(predicate, reply)`` pairs, each used once."""

    malformed: str | None = None  # "json": the first tool call's arguments are broken JSON; "schema": wrong field
    patient: bool = False  # code mode: never conclude (a round cap ends the run)
    ask_describer: bool = False  # tools mode: describe the overlays (describe_images) after measuring them
    overrides: list[tuple[Callable[[Request], bool], Reply]] = field(default_factory=list)
    seen: list[tuple[str, Request]] = field(default_factory=list)
    answers: list[Reply] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)

    def __call__(self, req: Request) -> Reply:
        role = role_of(req)
        self.seen.append((role, req))
        reply = next((r for when, r in self.overrides if when(req)), None)
        if reply is not None:
            self.overrides = [(w, r) for w, r in self.overrides if r is not reply]
        else:
            reply = getattr(self, role)(req)
            reply.usage = reply.usage if reply.usage != (0, 0) else USAGE[role]
        self.answers.append(reply)
        return reply

    def of(self, role: str) -> list[Request]:
        return [r for k, r in self.seen if k == role]

    def seen_replies(self) -> list[Reply]:
        return list(self.answers)

    # -- the blind describer
    def describer(self, req: Request) -> Reply:
        images = req.images
        if "in common" in req.last_user_text():
            return Reply(text="The bright regions are all " + colour_name(images[0]) + " squares.")
        return Reply(text="\n".join(f"{i}: a {colour_name(im)} square" for i, im in enumerate(images, 1)))

    # -- the critic's reviewer
    def critic(self, req: Request) -> Reply:
        body = json.loads(req.last_user_text())
        lead = (body.get("leading_hypothesis") or {}).get("statement", "?")
        return Reply(text=f"For '{lead}': brightness could confound colour; a dark red control would rule it out.")

    # -- the scientist
    def scientist(self, req: Request) -> Reply:
        text = req.text()
        if FINAL_MARK in req.last_user_text():
            return self.conclusion(text)
        if req.tools:
            return self.tools_turn(req)
        done = rounds_seen(req.last_user_text())
        if self.patient:  # one more experiment each round, on other backgrounds
            return Reply(text=GOOD_CODE.replace("[CONCLUDE]", "").replace("on grass", f"on grass {done}"))
        if done == 0:
            return Reply(text=THIN_CODE)
        if done == 1:
            return Reply(text=GOOD_CODE)
        return Reply(text=f"{HYPOTHESES.format(c1=0.85)}\n[CONCLUDE]")

    def conclusion(self, text: str) -> Reply:
        m = re.search(r"red mean ([\d.]+) control mean ([\d.]+)", text)
        evidence = (f"- red objects mean {m.group(1)}, other colours mean {m.group(2)}" if m
                    else "- red images fired most")
        if m:
            self.numbers.update(red=float(m.group(1)), control=float(m.group(2)))
        return Reply(text=(
            "[DESCRIPTION]: red objects, whatever their shape or background\n"
            "[LABEL]: red objects\n"
            f"[EVIDENCE]:\n{evidence}\n- five backgrounds, three control colours\n"
            "[CONFIDENCE]: 0.9"))

    def tools_turn(self, req: Request) -> Reply:
        answered = [i for i, t in enumerate(req.turns) if t.role == "assistant"]
        results = [p for t in req.turns[answered[-1] + 1 :] for p in t.parts if p.kind == "result"] if answered else []
        if not results:  # a fresh turn of a round
            if rounds_seen(req.last_user_text()) == 0:
                thoughts = f"[THOUGHTS]: Test red against other colours.\n{HYPOTHESES.format(c1=0.6)}"
                prompts = RED_PROMPTS + CONTROL_PROMPTS
                if self.malformed == "json":
                    self.malformed = None
                    return Reply(text=thoughts, calls=[Call("text2image", '{"prompts": ["a red ball on grass", ')])
                if self.malformed == "schema":
                    self.malformed = None
                    return Reply(text=thoughts, calls=[Call("text2image", {"prompt": "a red ball"})])
                return Reply(text=thoughts, calls=[Call("text2image", {"prompts": prompts})])
            return Reply(text=f"[THOUGHTS]: Red is settled.\n{HYPOTHESES.format(c1=0.9)}\n[CONCLUDE]")
        result = results[-1]
        if "ERROR" in result.text[:200]:  # the call failed: read the error and call again, correctly
            fixed = Call("text2image", {"prompts": RED_PROMPTS + CONTROL_PROMPTS})
            return Reply(text="Fixing the call.", calls=[fixed])
        if result.name == "text2image":
            return Reply(calls=[Call("neuron", {"images": IDS.findall(result.text)})])
        if result.name == "neuron" and self.ask_describer:
            self.ask_describer = False
            overlays = json.loads(result.text)["images"]
            return Reply(calls=[Call("describe_images", {"images": overlays[:3]})])
        if result.name == "describe_images":
            return Reply(text="The describer sees red squares where the unit fires.")
        acts = json.loads(result.text).get("activations", []) if result.text.startswith("{") else []
        if acts:
            self.numbers.update(red=sum(acts[:5]) / 5, control=sum(acts[5:]) / 3)
        return Reply(text=f"The five red images fire (mean {self.numbers.get('red', 0):.4f}), "
                          f"the other colours do not (mean {self.numbers.get('control', 0):.4f}).")
