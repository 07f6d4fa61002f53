"""Calibration table: accuracy by confidence bin, forced against unforced."""

from __future__ import annotations

from aim_agent.eval.calibration import Scored, bins, markdown


def test_bins_count_accuracy_and_confidence() -> None:
    scored = [Scored("a", 0.95, True, False), Scored("b", 0.92, True, False), Scored("c", 1.0, False, False),
              Scored("d", 0.45, False, True), Scored("e", 0.6, True, True)]
    table = {(b.low, b.high): b for b in bins(scored)}
    top = table[(0.9, 1.0)]
    assert top.n == 3 and top.accuracy == round(2 / 3, 4) and top.mean_confidence == round((0.95 + 0.92 + 1) / 3, 4)
    assert table[(0.0, 0.5)].n == 1 and table[(0.0, 0.5)].accuracy == 0.0
    assert table[(0.7, 0.9)].n == 0 and table[(0.7, 0.9)].accuracy is None
    text = markdown(scored)
    assert "| forced | 2 | 0.50 | 0.53 |" in text and "| not forced | 3 | 0.67 | 0.96 |" in text
