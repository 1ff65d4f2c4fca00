"""The architecture-ensembles benchmark's forward selection and report, on synthetic predictions (no training)."""

from __future__ import annotations

import numpy as np

import pytest

from benchmarks import architecture_ensembles as ae


def test_log_loss_matches_the_closed_form_for_softmax_and_sigmoid_outputs():
    softmax = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    assert ae._log_loss(softmax, np.array([0, 1])) == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2)
    sigmoid = np.array([[0.9], [0.4]])
    assert ae._log_loss(sigmoid, np.array([1, 0])) == pytest.approx(-(np.log(0.9) + np.log(0.6)) / 2)
    assert list(ae._classify(sigmoid)) == [1, 0]
    assert list(ae._classify(softmax)) == [0, 1]


def test_forward_selection_adds_the_trial_that_lowers_the_mean_s_loss_most_never_twice():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=40)
    predictions = [rng.dirichlet(np.ones(3) * 0.7, size=40) for _ in range(6)]
    picks = ae.greedy_selection(predictions, y, 4)
    assert len(set(picks)) == 4
    for step in range(4):
        def loss(i):
            return ae._log_loss(np.mean([predictions[j] for j in [*picks[:step], i]], axis=0), y)
        remaining = [i for i in range(6) if i not in picks[:step]]
        assert picks[step] == min(remaining, key=loss)
    # The second pick need not be the second best alone: here it is not (the mean rewards a complement).
    alone = sorted(range(6), key=lambda i: ae._log_loss(predictions[i], y))
    assert picks[0] == alone[0] and picks[1] != alone[1]
    assert sorted(ae.greedy_selection(predictions[:3], y, 5)) == [0, 1, 2]  # distinct, at most all


def _record(seed, one, top, greedy):
    return {"case": "digits-flat", "seed": seed, "one": one, "top": top, "greedy": greedy,
            "kbnas": {"test_accuracy": one[-1], "retrained": {"member_seconds": [1.0] * 5}}}


def test_report_pairs_each_ensemble_with_the_default_on_the_same_seeds():
    records = [_record(s, [0.95] * 5, [0.95, 0.96, 0.96, 0.96, 0.96 + 0.01 * s], [0.95] * 5) for s in range(3)]
    text = ae.report(records)
    assert "**digits-flat** (3 seeds" in text
    # top at K = 5: 96, 97, 98 against 95: +2.00, ahead on all three
    row = next(line for line in text.splitlines() if line.startswith("| top | 5 |"))
    assert "| +2.00 [" in row and row.endswith("| 3 / 0 / 0 |")
    row = next(line for line in text.splitlines() if line.startswith("| greedy | 5 |"))
    assert row.endswith("| 0 / 3 / 0 |")
