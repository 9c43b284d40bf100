"""The cost model of the full-gradient oracles: which checks run by default for a case's size.

A full check perturbs every element of every tensor, so its time grows with the
model's size; one estimated over :data:`MAX_SECONDS` is left out of the default
set (it still runs when asked for by name) and the directional probes, whose
cost does not grow with the number of elements, stand in.
"""

from __future__ import annotations

import os

import numpy as np

from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import gradient_shapes, parse_name

__all__ = [
    "MAX_SECONDS",
    "WORKERS",
    "copy_count",
    "row_steps",
    "estimated_seconds",
    "fd_costly",
    "richardson_costly",
    "complex_step_costly",
]

#: Full checks estimated to take longer than this do not run by default.
MAX_SECONDS = 20.0
#: Threads the batched forward runs its chunks on (numpy releases the GIL in ufuncs and BLAS).
WORKERS = max(1, min(2, os.cpu_count() or 1))

_SECONDS_PER_GEMM_FLOP = 1.0 / 3.0e10  # one core's DGEMM on these thin shapes
_SECONDS_PER_GATE = 4.5e-9  # activations and cell update per pre-activation element
_EVALUATIONS = {"fd": 2.2, "richardson": 8, "complex-step": 1}
_COMPLEX_FACTOR = 2.5  # a complex128 copy costs about this many real ones
#: A case of the LSTM family takes the generic copies path (Note [Generic copies]): measured 8 to 25
#: times slower per row-step than the plain path's estimate (H = 16, T = 20, B = 8, two cores).
_FAMILY_FACTOR = 15.0


def copy_count(config: LSTMConfig, name: str) -> int:
    """Number of elements of gradient ``name`` (one perturbed copy per element)."""
    return int(np.prod(gradient_shapes(config)[name]))


def row_steps(config: LSTMConfig, name: str) -> int:
    """Work of one copy of every element of ``name``, in (row, step, layer) units."""
    parsed = parse_name(name)
    t, b, n_layers = config.seq_len, config.batch_size, config.num_layers
    size = copy_count(config, name)
    if parsed.kind in ("head_weight", "head_bias"):
        return size * b * t // max(1, config.hidden_size)
    if parsed.kind == "x":
        return size * (t + 1) // 2 * n_layers
    if parsed.kind in ("h0", "c0"):
        return size * t * (n_layers + 1) // 2
    return size * b * t * (n_layers - parsed.layer)


def estimated_seconds(config: LSTMConfig, method: str) -> float:
    """Rough wall time of the full check by ``method`` ("fd", "richardson", "complex-step")."""
    hidden = config.hidden_size
    per_row_step = 2 * 4 * hidden * (max(config.input_size, hidden) + hidden + config.batch_size)
    per_row_step = per_row_step * _SECONDS_PER_GEMM_FLOP + 4 * hidden * _SECONDS_PER_GATE
    work = sum(row_steps(config, name) for name in gradient_shapes(config)) * config.num_directions
    factor = _EVALUATIONS[method] * (_COMPLEX_FACTOR if method == "complex-step" else 1.0)
    factor *= 1.0 if config.is_plain else _FAMILY_FACTOR
    return work * per_row_step * factor / WORKERS


def _costly(config: LSTMConfig, method: str) -> str | None:
    seconds = estimated_seconds(config, method)
    if seconds <= MAX_SECONDS:
        return None
    size = sum(int(np.prod(s)) for s in gradient_shapes(config).values())
    return (
        f"the full {method} check of {size} elements would take about {seconds:.0f} s (limit {MAX_SECONDS:g} s); "
        "--oracle directional checks cases of any size"
    )


def fd_costly(config: LSTMConfig) -> str | None:
    """Why the full central-difference check is left out of the default set for ``config`` (None if not)."""
    return _costly(config, "fd")


def richardson_costly(config: LSTMConfig) -> str | None:
    return _costly(config, "richardson")


def complex_step_costly(config: LSTMConfig) -> str | None:
    return _costly(config, "complex-step")
