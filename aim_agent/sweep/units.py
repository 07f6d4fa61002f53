"""Which units a sweep covers: ``--units all``, ``0-63``, ``0,5,9-12`` or unit names, checked against the layer."""

from __future__ import annotations

import re
from collections.abc import Sequence

_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
#: more units than this in one sweep is a typo, not a plan (the store and the index stay bounded)
MAX_UNITS = 1_000_000


def parse_units(spec: str, names: Sequence[str] | int) -> list[str]:
    """The units ``spec`` names, in order, without repeats.

    ``names`` is the layer's width (units are indices ``0 .. width-1``) or a unit source's listed
    names (``all`` is every listed name; an index or a range picks listed names by position; any
    other word is taken as a unit name, which the source checks when the unit is opened).
    """
    text = spec.strip()
    if not text:
        raise ValueError("--units is empty: give all, a range such as 0-63, or a list such as 0,5,9-12")
    width = names if isinstance(names, int) else len(names)
    listed = None if isinstance(names, int) else list(names)

    def pick(index: int) -> str:
        if not 0 <= index < width:
            raise ValueError(f"--units {spec!r}: unit {index} is outside the layer (valid: 0-{width - 1})"
                             if listed is None else
                             f"--units {spec!r}: index {index} is outside the {width} listed units (0-{width - 1})")
        return str(index) if listed is None else listed[index]

    if text == "all":
        picked = [pick(i) for i in range(width)]
    else:
        picked = []
        for part in (p.strip() for p in text.split(",")):
            match = _RANGE.match(part)
            if match:
                lo, hi = int(match.group(1)), int(match.group(2))
                if hi < lo:
                    raise ValueError(f"--units {spec!r}: the range {part!r} runs backwards (write {hi}-{lo})")
                if hi - lo + 1 > MAX_UNITS:
                    raise ValueError(f"--units {spec!r}: more than {MAX_UNITS} units")
                picked += [pick(i) for i in range(lo, hi + 1)]
            elif part.isdigit():
                picked.append(pick(int(part)))
            elif listed is not None and re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", part):
                picked.append(part)
            else:
                valid = f"indices 0-{width - 1}" if listed is None else "indices, ranges or unit names"
                raise ValueError(f"--units {spec!r}: {part!r} is not a unit (valid: all, {valid}, "
                                 "e.g. 0-63 or 0,5,9-12)")
    unique = list(dict.fromkeys(picked))
    if len(unique) > MAX_UNITS:
        raise ValueError(f"--units {spec!r}: {len(unique)} units; one sweep takes at most {MAX_UNITS}")
    return unique


def slug(text: str, empty: str = "unit") -> str:
    """``text`` as a folder name: letters, digits and ``-_.`` kept, anything else ``-`` (``empty`` if none is left)."""
    kept = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.")
    return kept[:128] or empty


def run_id_of(unit: str) -> str:
    """The run folder name of a unit (``DIR/runs/<run id>``): the unit with anything unusual replaced."""
    return slug(unit)
