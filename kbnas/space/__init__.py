"""Architectures as plain data, and the search space they are drawn from.

The module `kbnas/space.py` moved to `kbnas/space/search_space.py`; this package
re-exports its public names.
"""

from kbnas.space.search_space import *  # noqa: F401,F403
