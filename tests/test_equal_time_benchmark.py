"""The equal-time benchmark's statistics and summary, on synthetic records (no training)."""

from __future__ import annotations

import math

import numpy as np

import pytest

from benchmarks import equal_time, stats


def test_t_interval_matches_the_closed_form():
    # Mean 2, s = sqrt(2/3), n = 4: half width t_{0.975,3} · s / 2.
    values = [1.0, 2.0, 3.0, 2.0]
    low, high = stats.t_interval(values)
    half = 3.182446305284263 * math.sqrt(2 / 3) / 2
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert stats.t_interval([1.0]) is None


def test_paired_difference_uses_only_common_seeds():
    result = stats.paired_difference({0: 0.9, 1: 0.8, 2: 0.7}, {1: 0.7, 2: 0.6, 3: 0.1})
    assert result["seeds"] == [1, 2]
    assert result["mean"] == pytest.approx(0.1)
    assert result["ci95"] == pytest.approx((0.1, 0.1))


def _record(contender, seed, accuracy, **extra):
    return {"case": "digits", "contender": contender, "seed": seed, "budget": 180.0, "test_accuracy": accuracy,
            "search_seconds": 180.0, "total_seconds": 200.0, "trials": 10, **extra}


def test_summary_pairs_every_contender_and_the_searched_model_with_kbnas():
    records = [_record("kbnas", s, 0.99, test_accuracy_before_retraining=0.98,
                       test_accuracy_first_member=0.99 - 0.01 * (s == 2)) for s in range(3)]
    records += [_record("textbook", s, 0.985 - 0.005 * s) for s in range(3)]
    table = equal_time.summarize(records)["digits@180s"]
    assert table["kbnas"]["kbnas_minus_this"] is None
    assert table["textbook"]["kbnas_minus_this"]["mean"] == pytest.approx(0.01)
    assert table[equal_time.NO_RETRAINING]["kbnas_minus_this"]["mean"] == pytest.approx(0.01)
    assert table[equal_time.FIRST_MEMBER]["kbnas_minus_this"]["mean"] == pytest.approx(0.01 / 3)
    # Records from before a field existed (None) pair nothing.
    old = equal_time.summarize([_record("kbnas", 0, 0.99, test_accuracy_first_member=None)])["digits@180s"]
    assert equal_time.FIRST_MEMBER not in old
    markdown = equal_time.format_markdown(equal_time.summarize(records))
    assert "| textbook | 3 | 98.00 [" in markdown and "+1.00" in markdown


def test_write_into_replaces_only_the_marked_block(tmp_path):
    path = tmp_path / "b.md"
    path.write_text("before\n<!-- equal-time:begin -->\nold\n<!-- equal-time:end -->\nafter\n")
    equal_time.write_into(path, "new table", "cmd")
    text = path.read_text()
    assert text.startswith("before\n") and text.endswith("after\n")
    assert "new table" in text and "old" not in text
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text("no markers here\n")
    with pytest.raises(ValueError, match="no '<!-- equal-time:begin"):
        equal_time.write_into(unmarked, "t", "c")


def test_the_resplit_case_shuffles_the_rows_so_each_seed_has_its_own_test_set(tmp_path):
    from benchmarks.equal_time import breast_cancer_csv, user_split
    from kbnas.data_files import load_data

    def split(seed):
        directory = tmp_path / str(seed)
        directory.mkdir(exist_ok=True)
        return user_split(*load_data(str(breast_cancer_csv(directory, shuffle_seed=seed)), label_column="label"))

    fixed = user_split(*load_data(str(breast_cancer_csv(tmp_path)), label_column="label"))
    first, again, other = split(0), split(0), split(1)
    rows = lambda part: {tuple(row) for row in part[0]}  # noqa: E731
    # The same 569 rows, partitioned alike in size; the seed decides which rows are tested.
    assert [len(part[0]) for part in first] == [len(part[0]) for part in fixed]
    assert set().union(*map(rows, first)) == set().union(*map(rows, fixed))
    assert rows(first[2]) == rows(again[2])
    assert rows(first[2]) != rows(other[2]) and rows(first[2]) != rows(fixed[2])


def test_the_flat_digits_case_is_the_bundled_digits_as_a_shuffled_table(tmp_path):
    (tmp_path / "4").mkdir()
    from sklearn.datasets import load_digits

    from benchmarks.equal_time import CSV_CASES, _csv_of
    from kbnas.data_files import load_data

    assert "digits-flat" in CSV_CASES
    x, y = load_data(str(_csv_of("digits-flat", 3, str(tmp_path))), label_column="label")
    digits = load_digits()
    assert x.shape == (1797, 64) and sorted(set(y.tolist())) == list(range(10))
    # The same rows (as pixel tuples with their label), in another order.
    assert sorted(map(tuple, np.column_stack([x, y]))) == sorted(map(tuple, np.column_stack([digits.data,
                                                                                                digits.target])))
    assert not np.array_equal(y, digits.target)
    _, y_other = load_data(str(_csv_of("digits-flat", 4, str(tmp_path / "4"))), label_column="label")
    assert not np.array_equal(y, y_other)  # each seed its own order, so its own partition


def test_the_mlp_standardization_takes_a_constant_column_as_unit_variance():
    from benchmarks.equal_time import _standardization

    x_train = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 5.0]], dtype="float32")
    layer = _standardization(x_train)
    out = np.asarray(layer(np.array([[16.0, 3.0]], dtype="float32")))
    # Column 0 was blank in every training row: 16 stays 16 standard deviations, not 1.6e8.
    np.testing.assert_allclose(out, [[16.0, 0.0]], atol=1e-5)
    # Without a constant column the layer is Keras's adapted one: centred and scaled.
    adapted = np.asarray(_standardization(x_train[:, 1:])(np.array([[3.0], [5.0]], dtype="float32")))
    np.testing.assert_allclose(adapted, [[0.0], [2.0 / np.std([1.0, 3.0, 5.0])]], atol=1e-5)


def test_the_scikit_learn_contenders_are_the_named_models_at_their_defaults():
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from benchmarks.equal_time import CONTENDERS, SCIKIT_LEARN, scikit_learn_model

    for case in ("breast-cancer-resplit", "digits-flat"):
        assert set(SCIKIT_LEARN) <= set(CONTENDERS[case])
    logistic, svm = scikit_learn_model("logistic-regression", 0), scikit_learn_model("svm-rbf", 0)
    assert [type(step) for _, step in logistic.steps] == [StandardScaler, LogisticRegression]
    assert [type(step) for _, step in svm.steps] == [StandardScaler, SVC]
    # scikit-learn's defaults (the logistic regression allowed 1000 iterations to converge).
    assert svm.steps[1][1].get_params() == SVC().get_params()
    assert logistic.steps[1][1].get_params() == LogisticRegression(max_iter=1000).get_params()
    boosting = scikit_learn_model("gradient-boosting", 7)
    assert boosting.get_params() == clone(HistGradientBoostingClassifier(random_state=7)).get_params()
    with pytest.raises(ValueError, match="no scikit-learn contender 'mlp'"):
        scikit_learn_model("mlp", 0)


def test_a_scikit_learn_contender_fits_train_and_validation_and_scores_the_test_rows(tmp_path, monkeypatch):
    from benchmarks import equal_time

    seen = {}

    class Recorder:
        def fit(self, x, y):
            seen["fit"] = x.shape
            return self

        def score(self, x, y):
            seen["score"] = x.shape
            return 0.5

    monkeypatch.setattr(equal_time, "scikit_learn_model", lambda contender, seed: Recorder())
    record = equal_time.run_scikit_learn("svm-rbf", 0, equal_time._csv_of("digits-flat", 0, str(tmp_path)))
    # 1,797 rows split 60/20/20: 1,079 + 359 fitted, 359 scored.
    assert seen == {"fit": (1438, 64), "score": (359, 64)}
    assert record["test_accuracy"] == 0.5 and record["best"] == equal_time.SCIKIT_LEARN["svm-rbf"]


@pytest.mark.parametrize("case, chance", [("breast-cancer-resplit", 0.63), ("digits-flat", 0.1)])
def test_the_hand_written_mlp_trains_a_sigmoid_or_a_softmax_head(tmp_path, monkeypatch, case, chance):
    from benchmarks import equal_time

    monkeypatch.setattr(equal_time, "MLP_EPOCHS", 3)
    record = equal_time.run_mlp(0, equal_time._csv_of(case, 0, str(tmp_path)))
    # Three epochs take either data set well above its majority class (63 % of the
    # breast-cancer rows are benign; the ten digits are about equally frequent).
    assert record["test_accuracy"] > chance + 0.2, record


def test_a_contender_of_another_case_is_refused_before_any_run(tmp_path, capsys):
    output = tmp_path / "runs.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        equal_time.main(["--case", "digits", "--contenders", "svm-rbf", "kbnas", "--output", str(output)])
    assert exit_info.value.code == 2
    assert "no contender 'svm-rbf' for case digits" in capsys.readouterr().err
    assert not output.exists()
