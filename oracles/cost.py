"""The cost model: how long each part of a report takes on a case, one model for every decision.

Note [Cost model]
-----------------
Every part of a report is counted in three kinds of work, each with its own rate: GEMM flops,
elementwise passes over float64 elements, and numpy calls, whose fixed cost rules small cases
and long sequences cut into narrow chunks (a flop count alone put the full checks of a
2000-step case at seconds; they took minutes). The rates (SPEED) are this project's 2-core
machines', fitted by ``python -m bench cost``; a report scales them by how long its own exact
answer and conditioning probes took against their estimate (:func:`calibrated`), so a slower
or busier machine gets proportionally longer estimates. tests/test_cost.py checks estimates
against measured times over a range of sizes within ESTIMATE_FACTOR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles.batched import CHUNK_BYTES, JOBS_PER_WORKER, MIN_COLUMNS
from lstm_gradcheck.oracles.batched_forward import TARGET_COLUMNS, X_BUCKETS
from lstm_gradcheck.oracles.workers import WORKERS
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import gradient_shapes, is_lstm_param, parse_name

__all__ = [
    "ESTIMATE_FACTOR",
    "MAX_SECONDS",
    "WORKERS",
    "Work",
    "Speed",
    "SPEED",
    "calibrated",
    "reference_work",
    "forward_work",
    "conditioning_work",
    "tangent_work",
    "oracle_work",
    "full_check_work",
    "prepare_work",
    "estimated_seconds",
    "fd_costly",
    "richardson_costly",
    "complex_step_costly",
]

#: Estimates hold within this factor of the measured time (tests/test_cost.py): generous, since a
#: 2-core machine shared with other work runs the same code 2x slower from one minute to the next.
ESTIMATE_FACTOR = 4.0
#: Outside a report (search, the variants' matrix), full checks estimated over this do not run by default.
MAX_SECONDS = 20.0
#: Evaluations per element of each full check: central differences take 2 plus a tenth for
#: their third differences; x, h0 and c0, whose gradients are often small against the loss,
#: usually one more round at a larger step (3 more); Richardson 8, the complex step 1.
_PER_ELEMENT = {"fd": (2.1, 5.1), "richardson": (8.0, 8.0), "complex-step": (1.0, 1.0)}
#: A complex128 column-step against a real one: GEMM on interleaved parts, complex gates.
_COMPLEX_FLOPS, _COMPLEX_ELEMENTS = 2.0, 3.0
_TAYLOR_PER_TENSOR = 20  # loss evaluations per direction (Note [Taylor remainder]): measured 18-20
_DIRECTIONAL_PER_PROBE = 8  # two step sizes of four evaluations, as measured


@dataclass(frozen=True)
class Work:
    """Work in the model's three units: GEMM flops on the calling thread, elementwise float64
    element-passes, numpy calls; ``parallel`` work runs on WORKERS threads with one BLAS thread each."""

    flops: float = 0.0
    elements: float = 0.0
    calls: float = 0.0
    parallel: bool = False

    def __add__(self, other: Work) -> Work:
        return Work(self.flops + other.flops, self.elements + other.elements, self.calls + other.calls, self.parallel)

    def __mul__(self, k: float) -> Work:
        return Work(self.flops * k, self.elements * k, self.calls * k, self.parallel)


@dataclass(frozen=True)
class Speed:
    """Seconds per GEMM flop (``flop``: all-core BLAS; ``worker_flop``: one BLAS thread), per
    element-pass and per numpy call; :meth:`seconds` of a :class:`Work`."""

    flop: float
    worker_flop: float
    element: float
    call: float

    def seconds(self, work: Work) -> float:
        if work.parallel:
            one = work.flops * self.worker_flop + work.elements * self.element + work.calls * self.call
            return one / (WORKERS * _PARALLEL_EFFICIENCY if WORKERS > 1 else 1.0)
        return work.flops * self.flop + work.elements * self.element + work.calls * self.call

    def scaled(self, factor: float) -> Speed:
        return Speed(self.flop * factor, self.worker_flop * factor, self.element * factor, self.call * factor)


_PARALLEL_EFFICIENCY = 0.85
#: A case of the LSTM family takes the generic copies path (Note [Generic copies]): measured 8 to 25
#: times slower per row-step than the plain path's estimate (H = 16, T = 20, B = 8, two cores).
_FAMILY_FACTOR = 15.0
#: The rates of the project's 2-core machines, idle (fitted by ``python -m bench cost``).
SPEED = Speed(flop=2.2e-11, worker_flop=3.5e-11, element=1.2e-9, call=2.5e-6)


def calibrated(seconds: float, work: Work, speed: Speed = SPEED) -> Speed:
    """``speed`` scaled so that ``work`` takes the ``seconds`` it was measured to take (clamped to
    [0.25, 50]: one noisy measurement must not make every estimate absurd)."""
    expected = speed.seconds(work)
    if not (expected > 0 and seconds > 0 and math.isfinite(seconds)):
        return speed
    return speed.scaled(min(50.0, max(0.25, seconds / expected)))


def _inputs(config: LSTMConfig, layer: int) -> int:
    return config.input_size if layer == 0 else config.top_width


def _head(config: LSTMConfig, passes: float) -> Work:
    t, b, h, o = config.seq_len, config.batch_size, config.hidden_size, config.output_size
    flops = 2.0 * o * h * t * b * passes if config.has_head else 0.0
    return Work(flops, 12.0 * t * b * (o if config.has_head else h) * passes, 40.0 * passes)


def forward_work(config: LSTMConfig) -> Work:
    """The reference's forward: per layer and step one recurrent GEMM, the gates, the cell."""
    t, b, h = config.seq_len, config.batch_size, config.hidden_size
    work = _head(config, 1.0) + Work(calls=60.0)
    for layer in range(config.num_layers):
        flops = 2.0 * 4 * h * (h + _inputs(config, layer)) * b * t
        work = work + Work(flops, t * b * (9.0 * 4 * h + 6.0 * h), 14.0 * t)
    return work


def reference_work(config: LSTMConfig) -> Work:
    """The reference's forward and backward (an implementation's ``grads``, the exact answer)."""
    t, b, h = config.seq_len, config.batch_size, config.hidden_size
    work = forward_work(config) + _head(config, 2.0) + Work(calls=60.0)
    for layer in range(config.num_layers):
        flops = 2.0 * 4 * h * (2 * h + 2 * _inputs(config, layer)) * b * t
        work = work + Work(flops, t * b * (10.0 * 4 * h + 12.0 * h), 24.0 * t)
    return work


def _sizes(config: LSTMConfig) -> int:
    return sum(int(np.prod(s)) for s in gradient_shapes(config).values())


def conditioning_work(config: LSTMConfig, probes: int = 2) -> Work:
    """The conditioning probes: ``probes`` perturbed runs of the reference, each with every array
    and every step's states perturbed (random signs drawn for each)."""
    t, b, h, n = config.seq_len, config.batch_size, config.hidden_size, config.num_layers
    draws = _sizes(config) + 2 * n * t * b * h
    per_probe = reference_work(config) + Work(elements=12.0 * draws, calls=4.0 * n * t + 60)
    return per_probe * probes


def tangent_work(config: LSTMConfig, copies: int, first_layer: int = 0) -> Work:
    """:func:`lstm_gradcheck.oracles.tangent_forward.tangent_losses` of ``copies`` directions moving
    nothing below ``first_layer``, with its base run's gate factors."""
    t, b, h = config.seq_len, config.batch_size, config.hidden_size
    work = _head(config, 1.0) + Work(2.0 * config.output_size * h * t * b * copies, 4.0 * t * b * h * copies)
    for layer in range(first_layer, config.num_layers):
        rec = 2.0 * 4 * h * h * b * t
        flops = rec * (1 + copies * (2 if layer > first_layer else 1))
        elements = t * b * (16.0 * 4 * h + 14.0 * h * copies + 12.0 * 4 * h * copies)
        work = work + Work(flops, elements, 26.0 * t)
    return work


def prepare_work(config: LSTMConfig) -> Work:
    """The batched oracles' base run (batched_forward's prepare)."""
    return forward_work(config) * 1.3


def _columns(config: LSTMConfig, name: str) -> tuple[int, float, int, int]:
    """Per element copy of ``name``: batch columns, steps run, first layer, its count of elements."""
    t, b, n = config.seq_len, config.batch_size, config.num_layers
    parsed = parse_name(name)
    count = int(np.prod(gradient_shapes(config)[name]))
    if parsed.kind == "x":
        width = -(-t // X_BUCKETS)
        return 1, float(np.mean(t - (np.arange(t) // width) * width)), 0, count
    if parsed.kind in ("h0", "c0"):
        return 1, float(t), 0, count  # layer 0's copies dominate
    if parsed.layer is not None:
        return b, float(t), parsed.layer, count
    return 0, 0.0, n, count  # the head: no LSTM steps


def full_check_work(config: LSTMConfig, method: str, names=None) -> Work:
    """A full check (fd, richardson, complex-step) of ``names`` (default every tensor): every
    element's copies through the batched forward."""
    t, b, h, n = config.seq_len, config.batch_size, config.hidden_size, config.num_layers
    complex_ = method == "complex-step"
    itemsize = 16 if complex_ else 8
    per_params, per_states = _PER_ELEMENT[method]
    total_columns = 0.0
    work = Work(parallel=True)
    groups = []
    for name in gradient_shapes(config) if names is None else names:
        cols, steps, first, count = _columns(config, name)
        evaluations = count * (per_params if is_lstm_param(name) or name.startswith("head") else per_states)
        groups.append((name, cols, steps, first, evaluations))
        total_columns += evaluations * cols
    share = max(MIN_COLUMNS, total_columns / (JOBS_PER_WORKER * WORKERS))
    for name, cols, steps, first, evaluations in groups:
        if cols == 0:  # head copies: the head's loss on the stored outputs
            work = work + Work(elements=14.0 * evaluations * t * b * config.output_size, calls=20.0 + evaluations / 50)
            continue
        layers = n - first
        per_job = min(TARGET_COLUMNS, max(1, CHUNK_BYTES // (h * t * itemsize)), share)
        columns = evaluations * cols
        jobs = max(1.0, math.ceil(columns / max(1.0, per_job)) if name != "x" else columns / per_job + 8)
        flops = columns * steps * 2.0 * 4 * h * ((h + b) + 2 * h * (layers - 1))
        elements = columns * steps * layers * (4 * h * 5.0 + h * 8.0)
        if complex_:
            flops, elements = flops * _COMPLEX_FLOPS, elements * _COMPLEX_ELEMENTS
        work = work + Work(flops, elements, jobs * steps * layers * (16.0 if not complex_ else 40.0))
    return work + Work(elements=40.0 * _sizes(config), calls=200.0)


def oracle_work(config: LSTMConfig, name: str, directions: int = 2) -> Work:
    """The work of oracle ``name`` on a case where it passes (a failing case adds its search)."""
    names = list(gradient_shapes(config))
    if name in ("fd", "richardson", "complex-step"):
        serial = prepare_work(config)
        full = full_check_work(config, name) * config.num_directions
        if not config.is_plain:
            full = full * _FAMILY_FACTOR
        return Work(serial.flops, serial.elements, serial.calls, True) * (1.0 / WORKERS) + full
    if name == "taylor":
        return (forward_work(config) + Work(elements=3.0 * _sizes(config))) * (_TAYLOR_PER_TENSOR * (len(names) + 1))
    if name == "directional":
        probes = sum(5 if is_lstm_param(n) else 1 for n in names)
        return (forward_work(config) + Work(elements=3.0 * _sizes(config))) * (_DIRECTIONAL_PER_PROBE * probes + 1)
    if name == "screen":
        return (
            prepare_work(config) + tangent_work(config, directions) + Work(elements=20.0 * directions * _sizes(config))
        )
    if name in ("torch", "torch-nn"):
        return reference_work(config) * 1.5 + Work(calls=30.0 * config.seq_len * config.num_layers)
    raise ValueError(f"no cost model for oracle {name!r}")


def estimated_seconds(config: LSTMConfig, name: str, speed: Speed = SPEED) -> float:
    """Estimated wall time of oracle ``name`` on ``config`` at ``speed``."""
    return speed.seconds(oracle_work(config, name))


def _costly(config: LSTMConfig, method: str) -> str | None:
    seconds = estimated_seconds(config, method)
    if seconds <= MAX_SECONDS:
        return None
    return (
        f"the full {method} check of {_sizes(config)} elements would take about {seconds:.0f} s "
        f"(limit {MAX_SECONDS:g} s outside a report's budget); the screen and --oracle directional check any size"
    )


def fd_costly(config: LSTMConfig) -> str | None:
    """Why the full central-difference check is left out of the default set for ``config`` (None if not)."""
    return _costly(config, "fd")


def richardson_costly(config: LSTMConfig) -> str | None:
    return _costly(config, "richardson")


def complex_step_costly(config: LSTMConfig) -> str | None:
    return _costly(config, "complex-step")
