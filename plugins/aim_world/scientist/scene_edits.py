"""Edit instructions ('replace the dog with a cat') applied to parsed scenes: what an edited image shows."""

from __future__ import annotations

import re
from dataclasses import replace

from aim_world import vocabulary as vocab
from aim_world.scientist.parsing import Parsed, parse_text

_EDIT_VERB = re.compile(r"^\s*(replace|change|remove|add|make|turn|put|delete|swap)\b", re.I)
_REPLACE = re.compile(r"^\s*(?:replace|swap)\s+(?:the\s+|a\s+|an\s+)?(.+?)\s+(?:with|by|for)\s+(.+)$", re.I)
_RECOLOR = re.compile(r"^\s*(?:change|make|turn)\s+the\s+colou?r\s+of\s+(?:the\s+)?(.+?)\s+(?:to|into)\s+(.+)$",
                      re.I)
_BACKGROUND = re.compile(r"^\s*(?:change|replace|make|turn)\s+the\s+background\s+(?:to|into|with)\s+(.+)$", re.I)
_REMOVE = re.compile(r"^\s*(?:remove|delete)\s+(?:the\s+|a\s+|an\s+)?(.+)$", re.I)
_ADD = re.compile(r"^\s*(?:add|put)\s+(.+)$", re.I)


def is_edit_instruction(text: str) -> bool:
    return bool(_EDIT_VERB.match(text))


def _first_noun(text: str) -> str | None:
    things = parse_text(text).things
    return things[0].noun if things else None


def apply_edit(scene: Parsed, instruction: str) -> Parsed | None:
    """The parsed scene after an edit instruction, or None when the instruction is not understood."""
    new = Parsed([replace(t) for t in scene.things], list(scene.backgrounds), list(scene.colors),
                 list(scene.textures))
    if m := _BACKGROUND.match(instruction):
        bg = parse_text("on " + m.group(1)).backgrounds or [vocab.lookup_background(m.group(1)) or ""]
        if not bg[0]:
            return None
        new.backgrounds = bg[:1]
        return new
    if m := _RECOLOR.match(instruction):
        noun, color = _first_noun(m.group(1)), vocab.lookup_color(m.group(2).strip())
        targets = [t for t in new.things if t.noun == noun]
        if not targets or color is None:
            return None
        for t in targets:
            t.color = color
        return new
    if m := _REPLACE.match(instruction):
        old, repl = _first_noun(m.group(1)), parse_text(m.group(2)).things
        targets = [t for t in new.things if t.noun == old]
        if not targets or not repl:
            return None
        for t in targets:
            # the world editor keeps the old colour and texture unless the instruction names new ones
            t.noun, t.color, t.texture = repl[0].noun, repl[0].color or t.color, repl[0].texture or t.texture
        return new
    if m := _REMOVE.match(instruction):
        noun = _first_noun(m.group(1))
        if noun is None or noun not in [t.noun for t in new.things]:
            return None
        new.things = [t for t in new.things if t.noun != noun]
        return new
    if m := _ADD.match(instruction):
        added = parse_text(m.group(1)).things
        if not added:
            return None
        new.things += added
        return new
    return None
