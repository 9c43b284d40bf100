"""The full-gradient oracles against torch's gradcheck (``python -m bench fd``).

One process, one case (B=4, I=16, H=32, T=20, O=4, one layer, cross_entropy
at every step): ``torch.autograd.gradcheck(fast_mode=False)`` over every
parameter and x, and this project's full central differences, complex step
and Richardson over every parameter and x, h0, c0. The runs are interleaved
(torch, fd, complex step, Richardson, repeated) so that a busy machine slows
all of them alike. Printed as JSON: per method the median seconds over the
runs, its forward passes, the speed-up over gradcheck (median over median),
and the largest error of every tensor against the reference's analytic
gradient, relative to that tensor's scale (max |gradient|).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.yardsticks import time_gradcheck
from lstm_gradcheck.oracles.complex_step import complex_step_gradient
from lstm_gradcheck.oracles.finite_difference import central_gradient, richardson_gradient
from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.lstm import grads as reference_grads

__all__ = ["BENCHMARK_CONFIG", "TARGET_SPEEDUPS", "fd_benchmark"]

BENCHMARK_CONFIG = LSTMConfig(
    input_size=16,
    hidden_size=32,
    num_layers=1,
    output_size=4,
    seq_len=20,
    batch_size=4,
    loss_at="every",
    loss="cross_entropy",
    reduction="mean",
    forget_bias=0.0,
    final_state=False,
)
#: The speed goals: full central differences >= 30x, complex step >= 10x faster than gradcheck.
TARGET_SPEEDUPS = {"fd": 30.0, "complex_step": 15.0}
#: Accuracy goal of each method, relative to each tensor's scale (plus the method's resolution).
ACCURACY = {"fd": 1e-7, "complex_step": 1e-12, "richardson": 1e-9}


def _relative_errors(grads: dict[str, np.ndarray], exact: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name, g in grads.items():
        scale = float(np.max(np.abs(exact[name]), initial=0.0))
        err = float(np.max(np.abs(g - exact[name]), initial=0.0))
        out[name] = err / scale if scale > 0 else err
    return out


def _meets(grads, exact, goal: float, resolution: float) -> bool:
    """Every tensor within ``goal * scale + resolution`` (the method's roundoff floor, as in the
    property tests: a gradient far below the loss's roundoff cannot be resolved to its own scale)."""
    return all(
        float(np.max(np.abs(g - exact[n]), initial=0.0))
        <= goal * float(np.max(np.abs(exact[n]), initial=0.0)) + resolution
        for n, g in grads.items()
    )


def _methods() -> dict[str, Callable[[Case], object]]:
    return {"fd": central_gradient, "complex_step": complex_step_gradient, "richardson": richardson_gradient}


def fd_benchmark(repeats: int = 3, seed: int = 0, config: LSTMConfig = BENCHMARK_CONFIG) -> dict[str, object]:
    """Time gradcheck and the full-gradient oracles side by side, ``repeats`` (>= 3) times each.

    ``config`` defaults to the goals' case (:data:`BENCHMARK_CONFIG`); tests pass a tiny one.
    """
    if repeats < 3:
        raise ValueError(f"repeats: expected at least 3 (medians of 3 or more runs), got {repeats}")

    case = make_case(config, seed=seed)
    _, exact = reference_grads(case)
    methods = _methods()
    for run in methods.values():  # warm-up: imports, thread pool, BLAS
        run(make_case(config.replace(seq_len=2, hidden_size=4, input_size=2), seed=seed))
    torch_runs: list[float] = []
    torch_passed = True
    runs: dict[str, list[float]] = {name: [] for name in methods}
    results: dict[str, object] = {}
    torch_inputs = 0
    for _ in range(repeats):
        timing = time_gradcheck(case)
        torch_runs.append(timing.seconds)
        torch_passed &= timing.passed
        torch_inputs = timing.inputs
        for name, run in methods.items():
            start = time.perf_counter()
            results[name] = run(case)
            runs[name].append(time.perf_counter() - start)
    torch_median = statistics.median(torch_runs)
    out: dict[str, object] = {
        "case": {**config.as_dict(), "seed": seed},
        "machine": {"cpus": os.cpu_count(), "load_average": _load_average()},
        "torch_gradcheck": {
            "seconds": torch_median,
            "runs": torch_runs,
            "forward_passes": 2 * torch_inputs,
            "inputs": torch_inputs,
            "passed": torch_passed,
            "over": "every parameter and x",
        },
        "methods": {},
    }
    for name, result in results.items():
        median = statistics.median(runs[name])
        errors = _relative_errors(result.grads, exact)
        resolution = float(result.details.get("resolution", 0.0))
        entry: dict[str, object] = {
            "seconds": median,
            "runs": runs[name],
            "forward_passes": result.forward_passes,
            "speedup": torch_median / median,
            "over": "every parameter and x, h0, c0",
            "max_error_relative_to_scale": errors,
            "max_error_overall": max(errors.values()),
            "accuracy_goal": ACCURACY[name],
            "resolution": resolution,
            "meets_accuracy_goal": _meets(result.grads, exact, ACCURACY[name], resolution),
        }
        if name in TARGET_SPEEDUPS:
            entry["target_speedup"] = TARGET_SPEEDUPS[name]
            entry["meets_target"] = torch_median / median >= TARGET_SPEEDUPS[name]
        out["methods"][name] = entry
    return out


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
