"""Generate ``data/imagenet_wordnet.json``: the WordNet 3.0 hypernym table of the 1000 ImageNet classes.

How the shipped file was made (2026-12-07, Debian package ``wordnet-base`` 1:3.0-37, which installs
Princeton WordNet 3.0's dictionary files in ``/usr/share/wordnet``)::

    python -m aim_imagenet.make_wordnet --dict /usr/share/wordnet \\
        --classes ../shared/datasets/imagenet-sample-1000 \\
        --out plugins/aim_imagenet/data/imagenet_wordnet.json

``--classes`` gives the 1000 class wnids: a folder of ``<wnid>_<name>.<ext>`` photos (sorted file names
give the class order 0-999, as in ILSVRC-2012), or a text file with one wnid per line in class order.
Without it the class list of the file named by ``--out`` is reused, so the table can be regenerated
without the photos.

An ImageNet wnid is ``n`` + the 8-digit offset of a noun synset in WordNet 3.0's ``data.noun``. For every
class the generator reads the synset's lemmas (underscores become spaces), then follows every hypernym
pointer (``@``) and instance-hypernym pointer (``@i``) up to the root (``entity``), recording each
ancestor's lemmas and parents. Nothing else (glosses, other pointers) is kept. The output is sorted JSON:
``{"source": ..., "classes": [wnid, ...], "synsets": {wnid: {"lemmas": [...], "parents": [...]}}}``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: WordNet's noun database in a dictionary folder
DATA_NOUN = "data.noun"
#: pointer symbols followed upwards: hypernym and instance hypernym
HYPERNYM_POINTERS = ("@", "@i")
_WNID = re.compile(r"^n\d{8}$")
SOURCE = "Princeton WordNet 3.0 (data.noun), Debian wordnet-base; hypernyms @ and instance hypernyms @i"


@dataclass(frozen=True)
class Synset:
    """One noun synset as read from ``data.noun``: its lemmas (spaces, not underscores) and hypernyms."""

    wnid: str
    lemmas: tuple[str, ...]
    parents: tuple[str, ...]


def parse_line(line: str) -> Synset | None:
    """One ``data.noun`` line -> a :class:`Synset`; None for the licence header lines (they start with spaces).

    Format (WordNet's wndb(5)): ``offset lex_filenum ss_type w_cnt word lex_id ... p_cnt ptr ... | gloss``,
    where ``w_cnt`` is two hex digits and each pointer is ``symbol offset pos source/target``.
    """
    if not line or line[0] == " ":
        return None
    fields = line.split(" | ", 1)[0].split()
    offset, count = fields[0], int(fields[3], 16)
    words = fields[4 : 4 + 2 * count : 2]
    at = 4 + 2 * count
    pointers = int(fields[at])
    parents: list[str] = []
    for i in range(pointers):
        symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
        if symbol in HYPERNYM_POINTERS and pos == "n":
            parents.append("n" + target)
    return Synset("n" + offset, tuple(w.replace("_", " ") for w in words), tuple(parents))


def read_nouns(dict_dir: Path) -> dict[str, Synset]:
    """Every noun synset of a WordNet dictionary folder, by wnid."""
    path = dict_dir / DATA_NOUN
    if not path.is_file():
        raise FileNotFoundError(
            f"no {DATA_NOUN} in {dict_dir}: give the WordNet 3.0 dictionary folder "
            "(`apt-get install wordnet-base` installs it in /usr/share/wordnet)"
        )
    synsets: dict[str, Synset] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            synset = parse_line(line.rstrip("\n"))
            if synset is not None:
                synsets[synset.wnid] = synset
    return synsets


def class_wnids(classes: Path) -> list[str]:
    """The class wnids in class order, from a folder of ``<wnid>_*`` files or a text file of wnids."""
    if classes.is_dir():
        names = sorted(p.name for p in classes.iterdir() if p.is_file() and _WNID.match(p.name[:9]))
        wnids = [name[:9] for name in names]
    else:
        wnids = [line.strip() for line in classes.read_text().splitlines() if line.strip()]
    bad = [w for w in wnids if not _WNID.match(w)]
    if bad or len(set(wnids)) != len(wnids):
        raise ValueError(f"{classes}: expected distinct wnids like n01440764; bad or repeated: {bad[:5]}")
    return wnids


def closure(wnids: Iterable[str], synsets: dict[str, Synset]) -> dict[str, Synset]:
    """The synsets ``wnids`` and every ancestor of them (all hypernym paths)."""
    found: dict[str, Synset] = {}
    todo = list(wnids)
    while todo:
        wnid = todo.pop()
        if wnid in found:
            continue
        if wnid not in synsets:
            raise KeyError(f"{wnid} is not a WordNet 3.0 noun synset (is the dictionary WordNet 3.0?)")
        found[wnid] = synsets[wnid]
        todo.extend(synsets[wnid].parents)
    return found


def build_table(wnids: list[str], synsets: dict[str, Synset]) -> dict[str, object]:
    """The JSON table: the class order, and lemmas and parents of every class and ancestor."""
    kept = closure(wnids, synsets)
    return {
        "source": SOURCE,
        "classes": wnids,
        "synsets": {w: {"lemmas": list(s.lemmas), "parents": list(s.parents)} for w, s in sorted(kept.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dict", type=Path, default=Path("/usr/share/wordnet"), help="WordNet 3.0 dict folder")
    parser.add_argument("--classes", type=Path, help="folder of <wnid>_* photos or a file of wnids (class order)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.classes is not None:
        wnids = class_wnids(args.classes)
    elif args.out.is_file():
        wnids = list(json.loads(args.out.read_text())["classes"])
    else:
        parser.error("--classes is needed when --out does not exist yet")
    table = build_table(wnids, read_nouns(args.dict))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=0, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}: {len(wnids)} classes, {len(table['synsets'])} synsets")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
