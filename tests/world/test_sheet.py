"""``aim world sheet``: a captioned contact sheet of prompts and edits."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from PIL import Image

from aim_world.cli import run_sheet
from aim_world.sheet import MAX_CASES, _tile, read_cases


def test_tiles_caption_what_was_drawn_refused_or_impossible() -> None:
    image, outcome = _tile("a cat that is not black", 32, 0)
    assert image.size == (32, 32) and "cat" in outcome and "not: not black" in outcome
    assert _tile("a lighthouse on a rocky coast", 32, 0)[1].startswith("ERROR") and "lighthouse" in _tile(
        "a lighthouse on a rocky coast", 32, 0)[1]
    assert _tile("a dog | make it blue", 32, 0)[1].startswith("a blue dog")
    assert _tile("a dog | remove the cat", 32, 0)[1].startswith("REFUSED")


def test_the_sheet_command_writes_a_small_png(tmp_path: Path) -> None:
    cases = tmp_path / "cases.txt"
    cases.write_text("# comment\na red dog\n\na cup of coffee | make the cup green\na lighthouse\n")
    out = tmp_path / "sheet.png"
    assert run_sheet(argparse.Namespace(cases=str(cases), out=str(out), size=48, columns=2, seed=0)) == 0
    with Image.open(out) as sheet:
        assert sheet.width == 2 * (48 + 6) + 6 and sheet.height > 2 * 48


def test_bad_cases_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no cases"):
        read_cases(empty)
    many = tmp_path / "many.txt"
    many.write_text("a dog\n" * (MAX_CASES + 1))
    with pytest.raises(ValueError, match="at most"):
        read_cases(many)
