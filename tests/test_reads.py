"""kbnas.reads: which values a trial read, and what reaches the oracle."""

from __future__ import annotations

import keras_tuner

from kbnas.reads import ReadRecorder, drop_unread, droppable_names


def _loop_space(max_depth: int = 4) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", 1, max_depth)
    for slot in range(max_depth):
        hp.Choice(f"units_{slot}", [8, 16, 32])
    hp.Fixed("epochs", 3)
    hp.Choice("act", ["relu", "tanh"], parent_name="depth", parent_values=[2])
    return hp


def _build(hp) -> list:
    """KerasTuner's depth-loop idiom, without Keras."""
    return [hp.Choice(f"units_{i}", [8, 16, 32]) for i in range(hp.Int("depth", 1, 4))]


def test_the_recorder_sees_keras_tuner_reads_through_choice_int_and_get():
    hp = _loop_space()
    hp.values = ReadRecorder({**hp.values, "depth": 2, "units_0": 16, "units_1": 32, "units_2": 8, "units_3": 8})
    assert _build(hp) == [16, 32]
    assert hp.get("epochs") == 3
    assert hp.values.read == {"depth", "units_0", "units_1", "epochs"}
    # A hyperparameter the build declares for the first time is registered with its
    # default, and counts as read.
    hp.Int("filters", 1, 4)
    assert "filters" in hp.values.read and hp.values["filters"] == 1


def test_drop_unread_keeps_read_fixed_and_conditional_values_and_everything_when_nothing_was_read():
    hp = _loop_space()
    assert droppable_names(hp) == ["depth", "units_0", "units_1", "units_2", "units_3"]
    values = {"depth": 2, "units_0": 16, "units_1": 32, "units_2": 8, "units_3": 8, "epochs": 3, "act": "relu"}
    assert drop_unread(values, {"depth", "units_0", "units_1"}, droppable_names(hp)) == {
        "depth": 2, "units_0": 16, "units_1": 32, "epochs": 3, "act": "relu"}
    assert drop_unread(values, set(), droppable_names(hp)) == values


def test_anything_that_can_read_values_unseen_marks_every_value_read():
    for read_all in (lambda d: list(d), lambda d: d.items(), lambda d: d.keys(), lambda d: d.values(),
                     lambda d: d.copy()):
        recorder = ReadRecorder({"depth": 1, "units_0": 8, "units_1": 16})
        read_all(recorder)
        assert recorder.read == {"depth", "units_0", "units_1"}
    hp = _loop_space()
    hp.values = ReadRecorder({**hp.values, "depth": 1})
    hp.copy()  # a build that hands a copy to a helper: its reads are not seen
    assert hp.values.read == set(hp.values.plain())
    recorder = ReadRecorder({"depth": 1})
    assert recorder.plain() == {"depth": 1} and recorder.read == set()


def test_reads_within_unrecorded_are_forgotten_and_reads_before_it_kept():
    values = ReadRecorder({"depth": 1, "units_0": 8, "units_1": 16})
    assert values["depth"] == 1
    with values.unrecorded():
        assert dict(values.items()) == {"depth": 1, "units_0": 8, "units_1": 16}
    assert values.read == {"depth"}
    values.get("units_0")
    assert values.read == {"depth", "units_0"}
