"""The ``kbnas`` command: ``search``, ``show`` and ``export``.

``kbnas search`` searches architectures on the bundled 8x8 digits (or ``--data``),
shows one line per trial, exports the best model into ``OUTPUT/export`` and
reports its test accuracy. Running the same command again in the same output
directory resumes the search. Bad input ends with a one-line error and exit code
2 (the stack trace only with ``--debug``).

One module per part: `options` (the parser), `inputs` (the data and the output
folder), `budget` (the shares of ``--time-budget``), `search` (``kbnas search``),
`best` (the exported model), `inspect` (``show``, ``export``, ``report``), `run`
(`main`), and `common` (defaults and the settings that benchmarks replace, per
process: ``kbnas.cli.common.SELECTION``, ``ENSEMBLE``, ``EARLY_STOPPING``).
Importing it imports no TensorFlow: ``kbnas search --workers N`` starts its
worker processes before the chief's own TensorFlow import.
"""

from kbnas.cli.common import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TRIALS,
    DEFAULT_OUTPUT,
    DEFAULT_TIME_BUDGET,
    EXIT_USAGE,
    USER_SPLIT_FRACTIONS,
    USER_SPLIT_SEED,
    UsageError,
)
from kbnas.cli.options import build_parser, parse_duration
from kbnas.cli.run import main

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_TRIALS",
    "DEFAULT_OUTPUT",
    "DEFAULT_TIME_BUDGET",
    "EXIT_USAGE",
    "USER_SPLIT_FRACTIONS",
    "USER_SPLIT_SEED",
    "UsageError",
    "build_parser",
    "main",
    "parse_duration",
]
