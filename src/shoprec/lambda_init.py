"""The init phase of a Lambda function: what its handler module runs before the first event.

Importing the API creates some 75,000 objects that the garbage collector tracks (modules, classes,
functions, pydantic schemas), and they live as long as the execution environment. While they are being
created the cyclic collector runs about 190 times and scans them over and over, although almost none of
them is garbage: about 45 ms of a 0.55 s cold start (``docs/benchmarks.md``). :func:`init_phase` pauses
the collector for the import and then freezes what it built (:func:`gc.freeze`: a permanent generation
that collections skip), so neither the import nor any later collection pays for scanning them.

The price is the cyclic garbage the import itself leaves behind (about 850 objects, 0.25 MB, measured on
the API handler), which is frozen with the rest and never freed. Reference counting still frees
everything else the moment it is dropped, and the collector works as before on every object created
after the block.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def init_phase() -> Iterator[None]:
    """Run the block without the cyclic garbage collector, then freeze the objects it created.

    The collector is back as it was afterwards (also when the block raises, in which case nothing is
    frozen: a failed init discards the execution environment anyway).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()
