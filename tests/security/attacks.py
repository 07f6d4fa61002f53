"""Building blocks of the attacks: a pickle bomb, a module that marks its import."""

from __future__ import annotations

from pathlib import Path


class Payload:
    """Unpickling this runs ``open(marker, 'w')``: the file appearing means the pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_pickle_bomb(path: Path, marker: Path) -> Path:
    """A ``.pt`` whose unpickling creates ``marker`` (what a hostile sandbox wrote in the review)."""
    import torch

    torch.save({"model": Payload(marker)}, path)
    return path


def write_factory_module(folder: Path, name: str, marker: Path) -> None:
    """A module whose import creates ``marker``, with a ``build`` factory."""
    (folder / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU())\n"
    )
