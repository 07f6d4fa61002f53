"""What a MAIA-style evaluation writes (``aim eval predictive|spurious|bias``): ``result.json``, ``table.md``
and ``page.html`` (the tables, then the images behind each claim with their measured values) in one folder.

Every file is written atomically, so a killed evaluation leaves either the old file or the new one.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

THUMB = 96  # px side of the images on the page


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` places, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (numbers right-aligned)."""
    def cell(value: Any) -> str:
        return fmt(value).replace("|", "/").replace("\n", " ")

    align = ["---:" if rows and isinstance(rows[0][i], int | float) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Figure:
    """One image on the page and what was measured on it."""

    image: Image.Image
    caption: str


@dataclass
class Section:
    """A claim on the page: a heading, a sentence, and the images that support it."""

    heading: str
    text: str
    figures: list[Figure] = field(default_factory=list)


def _img(figure: Figure) -> str:
    # JPEG thumbnails: a page of 50 units x 20 images stays a few MB (PNG made it 13 MB)
    thumb = figure.image.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img src="data:image/jpeg;base64,{data}" width="{THUMB}" height="{THUMB}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")


def html_page(title: str, tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]],
              sections: Sequence[Section]) -> str:
    """A self-contained page: the tables, then one section per claim with its images (inline PNGs)."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}figure{display:inline-block;margin:3px;width:"
             f"{THUMB + 8}px;font-size:11px;vertical-align:top}}</style>", f"<h1>{html.escape(title)}</h1>"]
    for caption, headers, rows in tables:
        parts.append(f"<h2>{html.escape(caption)}</h2><table><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for section in sections:
        parts.append(f"<h3>{html.escape(section.heading)}</h3><p>{html.escape(section.text)}</p>")
        parts.append("".join(_img(f) for f in section.figures))
    return "\n".join(parts) + "\n"


def write_outputs(out_dir: Path, data: dict[str, Any], markdown: str, page: str) -> list[Path]:
    """``result.json``, ``table.md`` and ``page.html`` in ``out_dir``, each atomically; their paths."""
    from aim_agent.files import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"result.json": json.dumps(data, indent=1) + "\n", "table.md": markdown, "page.html": page}
    for name, text in files.items():
        atomic_write(out_dir / name, text.encode())
    return [out_dir / name for name in files]
