"""The experiment log: what was tried, what came back, in order.

Entries hold image ids, not pixels; when the log has an ``image_dir`` every logged image is
also written there as PNG, so a run's log (and its report) survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, Field

from aim_agent.images import ImageStore, current_store

EntryKind = Literal["exemplars", "experiment", "display", "note", "critic", "hypothesis", "conclusion"]


class LogEntry(BaseModel):
    """One record: free text plus the images, prompts and activations it is about."""

    kind: EntryKind = "experiment"
    text: str = ""
    image_ids: list[str] = Field(default_factory=list)
    activations: list[float] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    descriptions: list[str] = Field(default_factory=list)
    round: int = 0
    data: dict[str, Any] = Field(default_factory=dict)


def save_image(image_dir: Path, image: Image.Image, store: ImageStore) -> str:
    """Write ``image`` as ``image_dir/<id>.png`` once (atomically), with its record, and return its id.

    This is the folder a run's report and a resumed run read images back from; the record
    (scene, mask, parent, edit provenance, and the parents' own) lets a resumed run describe
    and edit the image as if it had never left memory.
    """
    iid = store.ensure(image)
    store.save_record(image_dir, iid)
    return iid


class ExperimentLog:
    """An append-only, thread-safe list of :class:`LogEntry`."""

    def __init__(self, image_dir: Path | None = None, images: ImageStore | None = None) -> None:
        self.entries: list[LogEntry] = []
        self.image_dir = image_dir
        #: the store the logged images belong to (the tool context's); default: the bound one
        self.images = images
        self.round = 0
        self._lock = threading.Lock()

    def add(
        self,
        kind: EntryKind,
        text: str = "",
        *,
        images: Sequence[Image.Image] = (),
        activations: Sequence[float] = (),
        prompts: Sequence[str] = (),
        descriptions: Sequence[str] = (),
        data: dict[str, Any] | None = None,
    ) -> LogEntry:
        ids = [self._keep(im) for im in images]
        entry = LogEntry(
            kind=kind,
            text=text,
            image_ids=ids,
            activations=[float(a) for a in activations],
            prompts=list(prompts),
            descriptions=list(descriptions),
            round=self.round,
            data=data or {},
        )
        with self._lock:
            self.entries.append(entry)
        return entry

    def _keep(self, image: Image.Image) -> str:
        store = self.images or current_store()
        return store.ensure(image) if self.image_dir is None else save_image(self.image_dir, image, store)

    def since(self, index: int) -> list[LogEntry]:
        with self._lock:
            return list(self.entries[index:])

    def dump(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.model_dump() for e in self.entries]

    @classmethod
    def load(
        cls, entries: list[dict[str, Any]], image_dir: Path | None = None, images: ImageStore | None = None
    ) -> ExperimentLog:
        log = cls(image_dir, images)
        log.entries = [LogEntry.model_validate(e) for e in entries]
        log.round = max((e.round for e in log.entries), default=0)
        return log
