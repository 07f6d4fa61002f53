"""Contact sheets: many world prompts (and edits) drawn side by side with their captions.

``aim world sheet prompts.txt -o sheet.png`` reads one case per line: a prompt, or
``prompt | edit instruction`` to show the edited image. Each tile is captioned with the case and
what the world made of it (the scene's caption, or the error / refusal), so a reader sees at a
glance whether the world drew what it was asked.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from aim_agent.providers import ProviderError
from aim_world.edit import edit_scene
from aim_world.parse import parse
from aim_world.render import render

MAX_CASES = 200
CAPTION_LINES = 4


def read_cases(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a cases file (at most :data:`MAX_CASES`)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    cases = [line for line in lines if line and not line.startswith("#")]
    if not cases:
        raise ValueError(f"{path} holds no cases: write one prompt (or 'prompt | edit') per line")
    if len(cases) > MAX_CASES:
        raise ValueError(f"{path} holds {len(cases)} cases; a sheet takes at most {MAX_CASES}")
    return cases


def _tile(case: str, size: int, seed: int) -> tuple[Image.Image, str]:
    prompt, _, instruction = (part.strip() for part in case.partition("|"))
    try:
        scene = parse(prompt, seed=seed)
    except ProviderError as exc:
        blank = Image.new("RGB", (size, size), (60, 60, 60))
        return blank, "ERROR: " + str(exc).split(". It draws")[0]
    if instruction:
        new, result = edit_scene(scene, instruction)
        if not result.applied:
            return render(scene, size).image, "REFUSED: " + "; ".join(result.notes)
        outcome = new.caption() + ("; " + "; ".join(result.notes) if result.notes else "")
        return render(new, size).image, outcome
    extra = [f"not: {n.phrase}" for n in scene.negations] + scene.notes
    extra += [f"{o.noun} {o.visible:.0%} visible" for o in scene.objects if o.visible is not None]
    return render(scene, size).image, scene.caption() + ("; " + "; ".join(extra) if extra else "")


def contact_sheet(cases: list[str], size: int = 128, columns: int = 8, seed: int = 0) -> Image.Image:
    """One tile per case: the image, the case in bold-ish dark text, what the world drew in grey.

    Tile ``k`` is drawn with seed ``seed + k``, so a prompt listed twice shows two looks."""
    font = ImageFont.load_default()
    line_h = 11
    caption_h = line_h * (CAPTION_LINES + 2) + 4
    width = max(18, size // 6)
    rows = (len(cases) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (size + 6) + 6, rows * (size + caption_h + 6) + 6), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, case in enumerate(cases):
        image, outcome = _tile(case, size, seed + k)  # a seed per tile: repeated prompts show the variety
        x = 6 + (k % columns) * (size + 6)
        y = 6 + (k // columns) * (size + caption_h + 6)
        sheet.paste(image, (x, y))
        asked = textwrap.wrap(case.replace("|", "->"), width)[:2]
        drew = textwrap.wrap(outcome, width)[:CAPTION_LINES]
        for i, line in enumerate(asked):
            draw.text((x, y + size + 2 + i * line_h), line, fill=(0, 0, 0), font=font)
        color = (170, 30, 30) if outcome.startswith(("ERROR", "REFUSED")) else (90, 90, 90)
        for i, line in enumerate(drew):
            draw.text((x, y + size + 4 + (len(asked) + i) * line_h), line, fill=color, font=font)
    return sheet
