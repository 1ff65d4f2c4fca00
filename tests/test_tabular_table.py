"""Tests for the tabular benchmark: benchmarks.tabular.table and benchmarks.tabular.generate."""

from __future__ import annotations

import collections
import fcntl
import json
import math
import sys

import numpy as np
import pytest

from benchmarks.tabular import generate
from benchmarks.tabular.generate import (
    DIGITS_SPACE,
    Recipe,
    RecipeMismatchError,
    check_settings,
    remaining_work,
    settings_document,
)
from benchmarks.tabular.table import (
    SUMMARY_BEGIN,
    SUMMARY_END,
    Record,
    TabularBenchmark,
    format_summary_markdown,
    read_rows,
    write_summary_into,
)

# Synthetic table: (architecture, seed) -> (final val accuracy, test accuracy).
# "relu" has the best mean val (0.95) but not the best mean test; "conv3-16" has the
# best mean test (0.90); "dense-32" has one seed only.
SYNTHETIC = {
    ("conv3-16", 0): (0.90, 0.91),
    ("conv3-16", 1): (0.92, 0.89),
    ("conv3-16", 2): (0.94, 0.90),
    ("relu", 0): (0.96, 0.80),
    ("relu", 1): (0.94, 0.82),
    ("dense-32", 0): (0.50, 0.60),
}
EPOCHS = 3


def synthetic_row(architecture: str, seed: int, val: float, test: float) -> dict:
    curve = [round(val - 0.1, 6), round(val - 0.05, 6), val]
    return Record(
        architecture=architecture,
        seed=seed,
        epochs=EPOCHS,
        params=DIGITS_SPACE.param_count(DIGITS_SPACE.from_hp_value(architecture)),
        val_accuracy=val,
        best_val_accuracy=max(curve),
        best_epoch=int(np.argmax(curve)) + 1,
        test_accuracy=test,
        train_accuracy=0.99,
        train_loss=0.05,
        val_accuracy_per_epoch=tuple(curve),
        train_seconds=1.5 + seed,
    ).to_row()


def write_table(folder, rows, *, recipe: Recipe | None = None, name: str = "table.jsonl"):
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    if recipe is not None:
        (folder / "settings.json").write_text(json.dumps(settings_document(recipe)))
    return path


@pytest.fixture
def synthetic_path(tmp_path):
    rows = [synthetic_row(a, s, val, test) for (a, s), (val, test) in SYNTHETIC.items()]
    return write_table(tmp_path, rows, recipe=Recipe(epochs=EPOCHS))


@pytest.fixture
def table(synthetic_path):
    return TabularBenchmark.load(synthetic_path)


# ---------------------------------------------------------------------- the space


def test_digits_space_has_918_architectures_by_depth():
    architectures = list(DIGITS_SPACE.enumerate())
    assert DIGITS_SPACE.count() == len(architectures) == 918
    assert collections.Counter(len(a) for a in architectures) == {1: 6, 2: 31, 3: 153, 4: 728}
    params = [DIGITS_SPACE.param_count(a) for a in architectures]
    assert (min(params), max(params)) == (20, 46378)


def test_importing_the_table_module_leaves_tensorflow_out():
    # The table and the generator's driver must stay light; only workers import TF.
    import subprocess

    code = (
        "import sys; import benchmarks.tabular.table, benchmarks.tabular.generate; "
        "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'keras_tuner')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------- loading and queries


def test_load_lists_architectures_and_seeds(table):
    assert table.architectures == ["conv3-16", "dense-32", "relu"]
    assert len(table) == 3 and "relu" in table and "maxpool" not in table
    assert table.seeds_available("conv3-16") == (0, 1, 2)
    assert table.seeds_available("relu") == (0, 1)
    assert table.seeds_available("dense-32") == (0,)
    # conv 3·3·1·16 + 16, head 8·8·16·10 + 10.
    assert table.param_count("conv3-16") == 160 + 10250
    assert table.settings["recipe"]["training"]["epochs"] == EPOCHS


def test_means_are_averages_over_seeds(table):
    assert table.mean_val("conv3-16") == pytest.approx(0.92)
    assert table.mean_test("conv3-16") == pytest.approx(0.90)
    assert table.mean_val("relu") == pytest.approx(0.95)
    assert table.mean_test("relu") == pytest.approx(0.81)
    assert table.mean_test("dense-32") == pytest.approx(0.60)
    assert table.mean_train_seconds("conv3-16") == pytest.approx(2.5)


def test_query_returns_the_value_of_a_uniformly_drawn_seed(table):
    draws = [table.query("conv3-16", np.random.default_rng(seed)) for seed in range(300)]
    counts = collections.Counter(draws)
    assert set(counts) == {0.90, 0.92, 0.94}
    assert all(70 <= count <= 130 for count in counts.values())
    # Exactly the seed that the same generator state would pick.
    rng, reference = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(10):
        expected = SYNTHETIC[("relu", (0, 1)[int(reference.integers(2))])][0]
        assert table.query("relu", rng) == expected


def test_query_at_an_epoch_reads_the_learning_curve(table):
    rng = np.random.default_rng(0)
    assert table.query("dense-32", rng, epoch=1) == pytest.approx(0.40)
    assert table.query("dense-32", rng, epoch=EPOCHS) == pytest.approx(0.50)
    with pytest.raises(ValueError, match="epoch must be in 1..3"):
        table.query("dense-32", rng, epoch=EPOCHS + 1)
    with pytest.raises(ValueError, match="epoch"):
        table.query("dense-32", rng, epoch=0)


def test_unknown_architecture_is_a_key_error(table):
    with pytest.raises(KeyError, match="not in the table"):
        table.query("maxpool", np.random.default_rng(0))
    with pytest.raises(KeyError):
        table.mean_test("maxpool")


def test_repeated_architecture_and_seed_is_rejected(tmp_path):
    row = synthetic_row("relu", 0, 0.5, 0.5)
    path = write_table(tmp_path, [row, row])
    with pytest.raises(ValueError, match="two rows for seed 0"):
        TabularBenchmark.load(path)


def test_read_rows_skips_an_unfinished_last_line_but_not_a_broken_middle_one(tmp_path):
    row = json.dumps(synthetic_row("relu", 0, 0.5, 0.5))
    path = tmp_path / "t.jsonl"
    path.write_text(row + "\n" + row[:20])
    assert len(read_rows(path)) == 1
    path.write_text(row[:20] + "\n" + row + "\n")
    with pytest.raises(ValueError, match=":1: not a JSON row"):
        read_rows(path)
    assert read_rows(tmp_path / "missing.jsonl") == []


# ---------------------------------------------------------------------- scoring a search


def test_regret_of_the_best_architecture_is_zero(table):
    assert table.best_mean_test() == pytest.approx(0.90)
    assert table.regret("conv3-16") == 0.0
    assert table.regret("relu") == pytest.approx(0.09)
    assert table.regret("dense-32") == pytest.approx(0.30)


def test_result_is_the_mean_test_of_the_best_queried_validation(table):
    # The search saw relu at 0.94 and conv3-16 at 0.90: it reports relu, although
    # conv3-16 has the better mean test accuracy.
    queries = [("dense-32", 0.50), ("relu", 0.94), ("conv3-16", 0.90)]
    assert TabularBenchmark.incumbent(queries) == "relu"
    assert table.best_test_of_best_val(queries) == pytest.approx(0.81)
    np.testing.assert_allclose(table.regret_trajectory(queries), [0.30, 0.09, 0.09])
    # Ties keep the first architecture queried.
    assert TabularBenchmark.incumbent([("relu", 0.94), ("conv3-16", 0.94)]) == "relu"
    with pytest.raises(ValueError, match="at least one query"):
        TabularBenchmark.incumbent([])


def test_replays_with_the_same_generator_seed_are_identical(table):
    def replay(seed: int) -> list[tuple[str, float]]:
        rng = np.random.default_rng(seed)
        return [(a, table.query(a, rng)) for a in table.architectures * 5]

    assert replay(11) == replay(11)
    assert any(replay(11) != replay(seed) for seed in range(12, 20))


# ---------------------------------------------------------------------- summary


def test_summary_against_hand_computed_numbers(table):
    summary = table.summary()
    assert summary["n_architectures"] == 3
    assert summary["n_space"] == 918
    assert summary["n_rows"] == 6
    assert summary["rows_per_seed"] == {"0": 3, "1": 2, "2": 1}
    assert summary["n_architectures_all_seeds"] == 1
    assert summary["epochs"] == [EPOCHS]
    assert summary["mean_val"]["max"] == pytest.approx(0.95)
    assert summary["mean_val"]["median"] == pytest.approx(0.92)
    assert summary["mean_test"]["min"] == pytest.approx(0.60)
    assert summary["mean_test"]["std"] == pytest.approx(np.std([0.90, 0.81, 0.60], ddof=1))
    assert summary["best_by_mean_val"]["architecture"] == "relu"
    assert summary["best_by_mean_val"]["regret"] == pytest.approx(0.09)
    assert summary["best_by_mean_test"]["architecture"] == "conv3-16"
    noise = summary["seed_noise"]["val"]
    within = (np.std([0.90, 0.92, 0.94], ddof=1) + np.std([0.96, 0.94], ddof=1)) / 2
    between = np.std([0.92, 0.95], ddof=1)
    assert noise["n"] == 2
    assert noise["within_architecture_std"] == pytest.approx(within)
    assert noise["between_architecture_std"] == pytest.approx(between)
    assert noise["ratio"] == pytest.approx(within / between)
    assert summary["train_seconds"]["total"] == pytest.approx(1.5 * 3 + 2.5 * 2 + 3.5)
    json.dumps(summary)  # serialisable


def test_summary_markdown_is_written_between_the_markers(table, tmp_path):
    block = format_summary_markdown(table.summary(), source="`table.jsonl`")
    assert "6 rows (seed 0: 3, seed 1: 2, seed 2: 1)" in block
    assert "| mean val | `relu` | 0.9500 | 0.8100 | 0.0900 | 2 |" in block
    # A "|" inside an architecture would split a Markdown table cell: it is escaped.
    summary = table.summary()
    summary["best_by_mean_test"]["architecture"] = "conv3-16|relu"
    assert "| mean test | `conv3-16\\|relu` | " in format_summary_markdown(summary)
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Title\n\n{SUMMARY_BEGIN}\nold numbers\n{SUMMARY_END}\n\nafter\n")
    write_summary_into(doc, block)
    text = doc.read_text()
    assert "old numbers" not in text and block in text
    assert text.startswith("# Title\n") and text.endswith("\nafter\n")
    write_summary_into(doc, block)  # idempotent
    assert doc.read_text() == text
    (tmp_path / "bare.md").write_text("no markers")
    with pytest.raises(ValueError, match="no .* block"):
        write_summary_into(tmp_path / "bare.md", block)


def test_summary_command_prints_markdown(synthetic_path, capsys):
    from benchmarks.tabular import table as table_module

    assert table_module.main(["--summary", "--path", str(synthetic_path)]) == 0
    assert "| mean test accuracy | 0.9000 | 0.8100 | 0.6000 |" in capsys.readouterr().out


# ---------------------------------------------------------------------- generator logic


def test_remaining_work_is_seed_major_and_skips_done_pairs():
    architectures = ["a", "b", "c"]
    done = {("b", 0), ("a", 1), ("z", 5)}
    assert remaining_work(architectures, [0, 1], done) == [
        ("a", 0), ("c", 0), ("b", 1), ("c", 1),
    ]
    everything = {(a, s) for a in architectures for s in (0, 1)}
    assert remaining_work(architectures, [0, 1], everything) == []
    assert remaining_work(architectures, [2, 0], set()) == [
        ("a", 2), ("b", 2), ("c", 2), ("a", 0), ("b", 0), ("c", 0),
    ]


def test_check_settings_accepts_the_same_recipe_and_names_every_difference(tmp_path):
    settings = tmp_path / "settings.json"
    assert check_settings(settings, Recipe(), table_has_rows=False) is False
    with pytest.raises(RecipeMismatchError, match="no settings file"):
        check_settings(settings, Recipe(), table_has_rows=True)
    settings.write_text(json.dumps(settings_document(Recipe(epochs=30))))
    assert check_settings(settings, Recipe(epochs=30), table_has_rows=True) is True
    with pytest.raises(RecipeMismatchError) as error:
        check_settings(settings, Recipe(epochs=20, learning_rate=0.01), table_has_rows=True)
    message = str(error.value)
    assert "training.epochs: 30 -> 20" in message
    assert "training.learning_rate: 0.001 -> 0.01" in message
    assert "space" not in message.split("\n", 1)[1]


def test_generator_refuses_to_mix_recipes_before_training(tmp_path, capsys):
    row = synthetic_row("conv3-16", 0, 0.9, 0.9)
    path = write_table(tmp_path, [row], recipe=Recipe(epochs=EPOCHS))
    with pytest.raises(RecipeMismatchError, match="training.epochs: 3 -> 4"):
        generate.generate(path, recipe=Recipe(epochs=4), seeds=[0], limit=1, workers=1)
    assert generate.main(["--output", str(path), "--epochs", "4", "--limit", "1"]) == 2
    assert "training.epochs: 3 -> 4" in capsys.readouterr().err
    assert len(read_rows(path)) == 1


def test_generator_with_nothing_left_drops_an_unfinished_row_and_trains_nothing(tmp_path):
    row = synthetic_row("conv3-16", 0, 0.9, 0.9)
    path = write_table(tmp_path, [row], recipe=Recipe(epochs=EPOCHS))
    with open(path, "a") as handle:
        handle.write(json.dumps(synthetic_row("conv3-16", 1, 0.9, 0.9))[:30])
    appended = generate.generate(path, recipe=Recipe(epochs=EPOCHS), seeds=[0], limit=1, workers=1)
    assert appended == 0
    assert path.read_text() == json.dumps(row) + "\n"


def test_generator_refuses_a_table_another_generator_holds(tmp_path):
    path = write_table(tmp_path, [], recipe=Recipe(epochs=EPOCHS))
    with open(path, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="another generator"):
            generate.generate(path, recipe=Recipe(epochs=EPOCHS), seeds=[0], limit=1, workers=1)


@pytest.mark.integration
def test_generator_trains_appends_and_resumes(tmp_path):
    path = tmp_path / "table.jsonl"
    recipe = Recipe(epochs=1)
    assert generate.generate(path, recipe=recipe, seeds=[0], limit=2, workers=2) == 2
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["recipe"]["training"]["epochs"] == 1
    # Resume in-process with one more architecture: only the new pair is trained.
    assert generate.generate(path, recipe=recipe, seeds=[0], limit=3, workers=1) == 1
    assert generate.generate(path, recipe=recipe, seeds=[0], limit=3, workers=1) == 0
    table = TabularBenchmark.load(path)
    expected = [a.encode() for a in list(DIGITS_SPACE.enumerate())[:3]]
    assert table.architectures == sorted(expected)
    for encoding in expected:
        (record,) = table.records(encoding)
        assert record.seed == 0 and record.epochs == 1 and record.best_epoch == 1
        assert record.params == DIGITS_SPACE.param_count(DIGITS_SPACE.from_hp_value(encoding))
        assert record.val_accuracy_per_epoch == (record.val_accuracy,)
        assert record.best_val_accuracy == record.val_accuracy
        # Accuracies on 359 images are multiples of 1/359; one epoch beats chance.
        for accuracy in (record.val_accuracy, record.test_accuracy):
            assert 0.2 < accuracy <= 1.0
            assert math.isclose(accuracy * 359, round(accuracy * 359), abs_tol=1e-3)
        assert record.train_seconds > 0
