"""How many threads the batched forward runs its chunks on: numpy releases the GIL in ufuncs and
BLAS, and these machines have two cores (Note [Copy scheduling] in :mod:`lstm_gradcheck.oracles.batched`)."""

from __future__ import annotations

import os

__all__ = ["WORKERS"]

WORKERS = max(1, min(2, os.cpu_count() or 1))
