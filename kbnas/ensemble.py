"""The exported model as an ensemble: the mean of K trainings of the chosen architecture.

After the search, the chosen architecture is trained afresh on train + validation
(`kbnas.cli`'s retraining). One such training is one draw: its seed decides the
initial weights, the batch order and the dropout masks, and on small data the
draw moves test accuracy by whole examples. The ensemble trains K members
f_1 … f_K of the same architecture, for the same epochs, from K seeds
(`member_seed`), and predicts their mean

    f(x) = (1/K) Σ_k f_k(x),

of the class probabilities for classification (softmax or sigmoid outputs) and
of the predictions for regression. For a squared loss the ensemble's expected
error is the members' mean error less the spread of the members around their
mean (the ambiguity decomposition, Krogh and Vedelsby 1995), so it is never
worse on average, and for probabilities the same holds for the log loss by
Jensen's inequality; accuracy can still go either way. Deep ensembles of
independently seeded networks are Lakshminarayanan, Pritzel and Blundell (2017).
For a linear model (the flat-feature template ``dropout``) the K members are K
noisy end-points of the optimizer around one convex optimum, and their mean is
closer to it.

Measured before adopting it (`benchmarks/ensemble_draws.py`: one architecture
retrained from many seeds on train + validation, the test accuracy of single
members and of ensembles of K drawn from them; docs/benchmarks.md):

- breast cancer, the linear template, 58 epochs, 30 seeds: single 98.73 %
  [98.49, 98.97], K = 3 99.06 %, K = 5 99.11 % (logistic regression: 99.12 %);
- the same data, ``dense-32|relu``, 17 epochs, 30 seeds: 98.44, 98.46, 98.37 %
  (no gain);
- digits, an architecture kbnas exported (equal-time run, seed 0), 12 epochs,
  15 seeds: 99.05 % [98.90, 99.20], 99.28 %, 99.31 %.

Time. Members train one after another; the first always, each later one only
when the deadline leaves room for the mean duration of those before it
(`train_members`). ``kbnas search`` keeps `EnsembleSettings.time_share` of its
``--time-budget`` for the members, so that the search and the ensemble
together still fit the budget: a sixth of 3 minutes trains all five members
of the linear template on the breast-cancer data (about 3 s each on a 2-core
machine) and about three of a digits convnet (about 10 s each).

The ensemble is one functional Keras model (`average_models`): the input, each
member as a nested model named ``member_<k>``, and a ``keras.layers.Average``.
It exports, serves and reloads like any other model; `ensemble_members` gives
the members back.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

#: Name of the Keras model `average_models` returns (how `ensemble_members` knows it).
ENSEMBLE_NAME = "kbnas_ensemble"


@dataclasses.dataclass(frozen=True)
class EnsembleSettings:
    """How many members the exported model averages, and the time kept for them.

    Attributes:
        members: K, the most members trained (1: one model, no ensemble).
        time_share: the share of a search's time budget kept for the members
            (used only when ``members`` > 1).
    """

    members: int = 5
    time_share: float = 1.0 / 6.0

    def __post_init__(self) -> None:
        if not isinstance(self.members, int) or self.members < 1:
            raise ValueError(f"members must be an integer >= 1, got {self.members!r}")
        if not 0.0 <= self.time_share < 1.0:
            raise ValueError(f"time_share must be in [0, 1), got {self.time_share}")

    @property
    def reserved_share(self) -> float:
        """The share of the time budget the search leaves for the members."""
        return self.time_share if self.members > 1 else 0.0


def member_seed(seed: int, index: int) -> int:
    """Training seed of member ``index`` (0-based): member 0 keeps ``seed``, so a
    one-member export is the model a single retraining gives."""
    return (int(seed) + 7919 * int(index)) % (2**31 - 1)


def train_members(
    train_one: Callable[[int], Any],
    members: int,
    deadline: float | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[Any], list[float]]:
    """Train up to ``members`` members, one after another.

    Member 0 always trains. Member k > 0 begins only when ``deadline`` (a
    ``clock`` value; None: no deadline) is at least the mean duration of the
    members before it away, so that it is expected to end in time.

    Args:
        train_one: trains member k (its argument) and returns it.
        members: K.
        deadline: when the last member should have ended.
        clock: the clock of ``deadline`` (`time.monotonic`).

    Returns:
        The members trained, and the seconds each took.
    """
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    trained: list[Any] = []
    seconds: list[float] = []
    for index in range(members):
        if index and deadline is not None and clock() + sum(seconds) / len(seconds) > deadline:
            break
        start = clock()
        trained.append(train_one(index))
        seconds.append(clock() - start)
    return trained, seconds


def retrain(
    build: Callable[[], Any],
    x: Any,
    y: Any,
    *,
    seed: int,
    epochs: int,
    members: int = EnsembleSettings.members,
    batch_size: int | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[Any], list[float]]:
    """Train up to ``members`` fresh models from ``build()`` on ``(x, y)`` (`train_members`).

    Member k is seeded with `member_seed` ``(seed, k)`` (Python, numpy,
    TensorFlow: ``keras.utils.set_random_seed``) before it is built, and trained
    with ``keras.Model.fit`` for ``epochs`` epochs without validation data, the
    retraining of `kbnas.cli` and `kbnas.BayesianNAS.retrain_best`.

    Returns:
        The members and the seconds each took.
    """
    import keras

    # A tf.data.Dataset brings its own batches and order (Keras warns on the defaults).
    dataset = hasattr(x, "element_spec")
    keywords = {"shuffle": False} if dataset else {"batch_size": batch_size}

    def train_one(index: int) -> Any:
        keras.utils.set_random_seed(member_seed(seed, index))
        model = build()
        model.fit(x, y, epochs=epochs, verbose=0, **keywords)
        return model

    return train_members(train_one, members, deadline, clock=clock)


def average_models(models: list, *, task: str | None):
    """One Keras model that predicts the mean of ``models``' outputs (module docstring).

    A single model is returned unchanged. The members must share one input shape
    and one output shape. The ensemble is compiled with the task's loss and
    metrics (`kbnas.model_builder.compile_model`) so that ``evaluate`` works,
    or, with ``task=None`` (members of any other hypermodel), as the first
    member was compiled; it is not meant to be trained further.
    """
    import keras

    from kbnas.model_builder import compile_model

    if not models:
        raise ValueError("an ensemble needs at least one model")
    if len(models) == 1:
        return models[0]
    first = models[0]
    shapes = {(tuple(m.inputs[0].shape[1:]), tuple(m.outputs[0].shape[1:])) for m in models}
    if len(shapes) != 1:
        raise ValueError(f"the members' input and output shapes differ: {sorted(shapes)}")
    inputs = keras.Input(shape=tuple(first.inputs[0].shape[1:]), dtype=first.inputs[0].dtype, name="inputs")
    # Each member as a nested model of its own name (the members' layer names repeat).
    outputs = [keras.Model(m.inputs[0], m.outputs[0], name=f"member_{k}")(inputs) for k, m in enumerate(models)]
    mean = keras.layers.Average(dtype="float32", name="mean")(outputs)
    ensemble = keras.Model(inputs, mean, name=ENSEMBLE_NAME)
    if task is None:
        config = first.get_compile_config()
        if config:
            # As `compile_from_config` does, without building optimizer variables
            # for a model that is never trained (they would be saved with it).
            ensemble.compile(**keras.saving.deserialize_keras_object(config))
        return ensemble
    return compile_model(ensemble, task, optimizer="adam", learning_rate=1e-3)


def ensemble_members(model) -> list:
    """The members of an `average_models` ensemble, or ``[model]`` for any other model."""
    import keras

    if model.name != ENSEMBLE_NAME:
        return [model]
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
