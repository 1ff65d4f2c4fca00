"""Smoke tests of `benchmarks.end_to_end`: the hand-written space and one tiny real run."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.integration

keras_tuner = pytest.importorskip("keras_tuner")

from benchmarks import end_to_end  # noqa: E402
from kbnas import datasets  # noqa: E402
from kbnas.hypermodel import ConvNetHyperModel  # noqa: E402
from kbnas.space import Architecture  # noqa: E402


@pytest.fixture(scope="module")
def trainer() -> ConvNetHyperModel:
    split = datasets.load_digits_split()
    return ConvNetHyperModel(max_depth=6, seed=0).configure(split.x_train, split.y_train)


def _hyperparameters(values: dict) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    return hp


@pytest.mark.parametrize(
    "values, tokens, params",
    [
        # conv 3·3·1·16+16 = 160; 4·4·16 = 256 → dense 256·32+32 = 8,224; head 32·10+10 = 330
        (
            {"n_conv": 1, "filters_0": 16, "kernel_0": 3, "relu_0": True, "pool_0": "max",
             "n_dense": 1, "units_0": 32},
            "conv3-16|relu|maxpool|dense-32|relu",
            8714,
        ),
        # conv 5·5·1·32+32 = 832; head 8·8·32·10+10 = 20,490
        (
            {"n_conv": 1, "filters_0": 32, "kernel_0": 5, "relu_0": False, "pool_0": "none", "n_dense": 0},
            "conv5-32",
            21322,
        ),
        # 8×8 → 4×4 → 2×2 → 1×1: conv 160, conv 3·3·16·32+32 = 4,640, conv 5·5·32·64+64 = 51,264, head 650
        (
            {"n_conv": 3, "n_dense": 0,
             "filters_0": 16, "kernel_0": 3, "relu_0": False, "pool_0": "avg",
             "filters_1": 32, "kernel_1": 3, "relu_1": False, "pool_1": "max",
             "filters_2": 64, "kernel_2": 5, "relu_2": False, "pool_2": "avg"},
            "conv3-16|avgpool|conv3-32|maxpool|conv5-64|avgpool",
            56714,
        ),
    ],
)
def test_hand_written_network_matches_kbnas_layers(trainer, values, tokens, params):
    model = end_to_end.HandWrittenConvNet(trainer).build(_hyperparameters(values))
    assert "|".join(end_to_end.handwritten_tokens(values)) == tokens
    assert model.count_params() == params
    # kbnas' own parameter count of the same layers (stack plus head)
    assert end_to_end.kbnas_default_space().param_count(Architecture.decode(tokens)) == params
    assert model.output_shape == (None, 10)


def test_space_sizes_match_closed_forms():
    sizes = end_to_end.space_sizes()
    assert sizes["hand_written"] == (1 + 36 + 36**2 + 36**3) * (1 + 3 + 9)
    # Networks with 1..6 layers: a block has 1 (conv), 2 (+relu or +pool: 3 ways)
    # or 3 layers (+relu+pool: 2 ways), times 6 conv choices; a dense layer is 2 layers, 3 widths.
    block = np.array([0, 6, 18, 12])
    dense = np.array([0, 0, 3])
    expected_both = 0
    for n_conv in range(4):
        for n_dense in range(3):
            polynomial = np.array([1])
            for factor in [block] * n_conv + [dense] * n_dense:
                polynomial = np.convolve(polynomial, factor)
            expected_both += int(polynomial[1:7].sum())
    assert sizes["both"] == expected_both == 33528
    assert sizes["kbnas"] == end_to_end.kbnas_default_space().count()


def test_tiny_run_is_recorded_resumed_and_summarised(tmp_path, capsys):
    output = tmp_path / "runs.jsonl"
    arguments = ["--seeds", "1", "--trials", "1", "--epochs", "1", "--contenders", "keras-tuner-bo",
                 "--in-process", "--output", str(output)]
    assert end_to_end.main(arguments) == 0
    (record,) = end_to_end.read_records(output)
    assert (record["contender"], record["seed"], record["trials"], record["epochs"]) == ("keras-tuner-bo", 0, 1, 1)
    assert record["completed_trials"] == 1 and record["failed_trials"] == 0
    assert record["trial_epochs"] == [1] and record["epochs_trained"] == 1
    assert 0.0 <= record["test_accuracy"] <= 1.0
    assert record["best_val_accuracy"] == record["trial_scores"][0]
    assert 0.0 < record["checkpoint_seconds"] <= record["fit_seconds"] < record["wall_seconds"]
    assert record["outside_fraction"] == pytest.approx(1 - record["fit_seconds"] / record["wall_seconds"])
    assert record["gp_proposals"] == 0  # one trial: still the random initial design
    assert len(record["load_start"]) == 3 and len(record["load_end"]) == 3

    assert end_to_end.main(arguments) == 0  # finished runs are skipped
    assert len(end_to_end.read_records(output)) == 1

    capsys.readouterr()
    summary_json = tmp_path / "summary.json"
    assert end_to_end.main(["--summary", "--output", str(output), "--summary-json", str(summary_json)]) == 0
    table = capsys.readouterr().out
    assert "| keras-tuner-bo | 1 |" in table
    summary = json.loads(summary_json.read_text())
    assert summary["runs"] == 1
    entry = summary["contenders"]["keras-tuner-bo"]
    assert entry["test_accuracy"]["mean"] == record["test_accuracy"]
    assert entry["test_accuracy"]["std"] is None  # one run
    assert entry["trial_quality"]["initial"]["trials"] == 1 and entry["trial_quality"]["later"]["trials"] == 0
    assert entry["trial_quality"]["initial"]["mean"] == record["trial_scores"][0]
