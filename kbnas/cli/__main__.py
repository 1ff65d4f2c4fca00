"""``python -m kbnas.cli``: the ``kbnas`` command."""

import sys

from kbnas.cli.run import main

sys.exit(main())
