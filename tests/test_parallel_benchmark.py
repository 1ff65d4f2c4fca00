"""The parallel benchmark's summary (`benchmarks.parallel`), on synthetic records (no search)."""

from __future__ import annotations

import pytest

from benchmarks import parallel


def _record(seed, workers, wall, code=None, search=None):
    return {"mode": "fixed", "workers": workers, "seed": seed, "wall_seconds": wall,
            "search_seconds": search or wall - 5, "trials": 8, "completed": 8, "distinct": 8, "epochs": 120,
            "test_accuracy": 0.98, "code": code}


def test_other_code_is_its_own_row_paired_with_this_checkouts_same_worker_count():
    records = []
    for seed, (one, two, other) in enumerate([(40.0, 30.0, 32.0), (50.0, 38.0, 41.0), (44.0, 35.0, 36.0)]):
        records += [_record(seed, 1, one), _record(seed, 2, two), _record(seed, 2, other, code="abc123")]
    records.append(_record(3, 2, 99.0, code="abc123"))  # no run of this checkout on seed 3: unpaired
    rows = {(row["workers"], row["code"]): row for row in parallel.summarize(records)}
    assert set(rows) == {(1, None), (2, None), (2, "abc123")}
    assert rows[(2, None)]["ratio"]["mean"] == pytest.approx((30 / 40 + 38 / 50 + 35 / 44) / 3)
    # The other code's ratio is to this checkout's one worker, on the seeds both ran.
    assert rows[(2, "abc123")]["ratio"]["mean"] == pytest.approx((32 / 40 + 41 / 50 + 36 / 44) / 3)
    assert rows[(2, "abc123")]["seconds_here_minus_code"]["mean"] == pytest.approx((-2 - 3 - 1) / 3)
    assert rows[(2, None)]["seconds_here_minus_code"] is None
    table = parallel.format_markdown(parallel.summarize(records))
    assert "| fixed | 2 at abc123 | 4 |" in table
    assert "this checkout minus abc123 (paired, 3 seeds): -2.0" in table


def test_records_from_before_other_code_existed_count_as_this_checkout():
    records = [_record(0, 1, 40.0), _record(0, 2, 30.0)]
    for record in records:
        del record["code"]
    (one, two) = parallel.summarize(records)
    assert one["code"] is None and two["ratio"]["mean"] == pytest.approx(0.75)


def test_a_checkout_given_as_a_path_is_used_as_it_is(tmp_path):
    (tmp_path / "kbnas").mkdir()
    (tmp_path / "kbnas" / "__init__.py").write_text("")
    with parallel.checkouts([str(tmp_path)]) as found:
        (checkout,) = found
        assert checkout.label == str(tmp_path) and checkout.path == tmp_path.resolve()
    assert (tmp_path / "kbnas" / "__init__.py").exists()  # not a temporary worktree: left alone
