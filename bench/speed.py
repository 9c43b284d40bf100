"""Speed of the reference and of the harness, measured against torch in the same run.

* :func:`reference_vs_torch`: the reference's forward+backward against
  ``torch.nn.LSTM``'s on the same case (same threads), medians of repeats.
* :func:`scaling`: the reference's time against T and against H.
* :func:`throughput`: reference-vs-torch checks per second on the ``ci``
  strategies' small cases, with the time split between the parts of a check.

Ratios only: absolute seconds depend on the machine and its load, ratios
measured side by side much less. Nothing here is asserted in tests.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from threadpoolctl import threadpool_info

from lstm_gradcheck.oracles.batched import partial_losses
from lstm_gradcheck.oracles.batched_forward import prepare
from lstm_gradcheck.oracles.compare import compare_gradients
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, Judged, judged_cases
from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.lstm import grads

__all__ = [
    "PERF_CONFIG",
    "environment",
    "median_seconds",
    "best_seconds",
    "reference_vs_torch",
    "scaling",
    "throughput",
    "fastest_throughput",
    "parallel_throughput",
    "fd_seconds_per_copy",
    "ci_times",
]


#: The speed goals' case: B=32, T=100, I=128, H=256, O=8, one layer, cross_entropy at every step.
PERF_CONFIG = LSTMConfig(
    input_size=128,
    hidden_size=256,
    num_layers=1,
    output_size=8,
    seq_len=100,
    batch_size=32,
    loss_at="every",
    loss="cross_entropy",
    reduction="sum",
    forget_bias=0.0,
    final_state=False,
)


def _samples(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    return statistics.median(_samples(fn, repeats, warmup))


def best_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Shortest wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls: the
    machine's noise (other tenants, page faults) only ever adds time to a call."""
    return min(_samples(fn, repeats, warmup))


def _cpu_model() -> str:
    """The CPU's model name (figures differ 2x between machines of one kind: say which one)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, object]:
    """What the figures were measured on: CPUs, BLAS and torch threads, versions."""
    import torch  # noqa: PLC0415 (only for the version and thread count it reports)

    blas = [{k: info.get(k) for k in ("internal_api", "num_threads", "version")} for info in threadpool_info()]
    return {
        "machine": _cpu_model(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "blas": blas,
    }


def _reference_seconds(case: Case, repeats: int) -> float:

    # The shortest pass: each row's first passes follow the previous benchmark's threads, which
    # still spin for a while (measured: H = 8 at 152 us per step in a median of 3, 49 in another run).
    return best_seconds(lambda: grads(case), repeats)


#: Timed passes per turn of :func:`reference_vs_torch`; the turn's time is the shortest.
TURN_PASSES = 3


def reference_vs_torch(
    repeats: int = 7, layers: Sequence[int] = (1, 2, 3), dtypes: Sequence[str] = ("float64", "float32")
) -> list[dict[str, object]]:
    """The reference's forward+backward against torch.nn.LSTM's, same case, same process.

    The two take turns, ``repeats`` pairs, so that a change in the machine's
    speed during the run (this VM's varies by 20% from minute to minute) falls
    on both. The pairs run in rounds, one pair of every row per round, so that
    a slow stretch of the machine spreads over the rows instead of taking most
    pairs of one row (measured before: a float32 row's median went from 1.25
    to 1.79 in a run where the reference alone slowed for a few seconds).
    Each turn starts with an untimed pass: right after the other
    library, its BLAS or OpenMP threads still spin and take a core (measured:
    torch 1.6x slower timed straight after the reference); then it times
    ``TURN_PASSES`` passes and keeps the shortest. Each row: dtype,
    layers, the median seconds of each, the pairs' ratios, and ``ratio`` =
    their median, reference / torch (below 1: faster).
    """
    from bench.yardsticks import forward_backward_pass  # noqa: PLC0415 (torch loads only here)

    keys = [(dtype, num_layers) for dtype in dtypes for num_layers in layers]
    cases = {key: make_case(PERF_CONFIG.replace(dtype=key[0], num_layers=key[1]), seed=0) for key in keys}
    torch_passes = {key: forward_backward_pass(case) for key, case in cases.items()}
    pairs: dict[tuple[str, int], list[tuple[float, float]]] = {key: [] for key in keys}
    for _ in range(repeats):
        for key in keys:
            ref = best_seconds(lambda: grads(cases[key]), TURN_PASSES)  # noqa: B023 (called at once)
            pairs[key].append((ref, best_seconds(torch_passes[key], TURN_PASSES)))
    return [
        {
            "dtype": dtype,
            "layers": num_layers,
            "reference_s": statistics.median(r for r, _ in pairs[dtype, num_layers]),
            "torch_s": statistics.median(t for _, t in pairs[dtype, num_layers]),
            "pair_ratios": [round(r / t, 3) for r, t in pairs[dtype, num_layers]],
            "ratio": statistics.median(r / t for r, t in pairs[dtype, num_layers]),
        }
        for dtype, num_layers in keys
    ]


#: Timed passes per row of :func:`scaling`; the row's time is the shortest.
SCALING_PASSES = 5


def scaling(
    seq_lens: Sequence[int] = (10, 30, 100, 300, 1000),
    hidden_sizes: Sequence[int] = (8, 32, 128, 512),
    repeats: int = SCALING_PASSES,
    batched_fd: Callable[[Case], float] | None = None,
) -> dict[str, list[dict[str, float]]]:
    """The reference's forward+backward seconds (the shortest of ``repeats`` passes) against
    T (H = 64) and against H (T = 50), B = 16, I = 32; ``per_step_us`` = seconds / T in
    microseconds. With ``batched_fd``
    (seconds of the batched finite-difference forward per perturbed copy of a case),
    also the FD oracle's cost per perturbation."""
    base = LSTMConfig(
        input_size=32,
        hidden_size=64,
        num_layers=1,
        output_size=8,
        seq_len=50,
        batch_size=16,
        reduction="sum",
        final_state=False,
        forget_bias=0.0,
    )
    out: dict[str, list[dict[str, float]]] = {"seq_len": [], "hidden_size": []}
    for key, values in (("seq_len", seq_lens), ("hidden_size", hidden_sizes)):
        for value in values:
            case = make_case(base.replace(**{key: value}), seed=0)
            row = {key: value, "reference_s": _reference_seconds(case, repeats)}
            row["per_step_us"] = row["reference_s"] / case.config.seq_len * 1e6
            if batched_fd is not None:
                row["fd_per_copy_s"] = batched_fd(case)
            out[key].append(row)
    return out


def throughput(
    examples: int = 200, seed: int | None = None, ready: Callable[[], object] | None = None
) -> dict[str, object]:
    """Reference-vs-torch checks per second on the ``ci`` strategies' cases.

    A check is what the properties of ``properties/test_oracles.py`` do: draw
    a case with its exact answer (:func:`lstm_gradcheck.properties.strategies.judged_cases`),
    run the reference (float32 cases only: on a float64 case the drawn exact
    answer is the reference's), the torch oracle, the conditioning probes and
    the comparison. ``ms_per_check`` splits the time between them;
    ``generation`` is the rest: Hypothesis's drawing, building the case and
    the exact answer that admits it. The examples are Hypothesis's
    derandomized ones, or those of ``seed``; ``ready`` is called after the
    warm-up, just before the timing starts.
    """
    from lstm_gradcheck.oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch loads only here)

    parts = {"reference": 0.0, "torch": 0.0, "conditioning": 0.0, "compare": 0.0}
    count = [0]

    def timed(name: str, fn: Callable[[], object]) -> object:
        start = time.perf_counter()
        value = fn()
        parts[name] += time.perf_counter() - start
        return value

    @settings(
        max_examples=examples,
        derandomize=seed is None,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(judged_cases(DEFAULT_SPACE))
    def check(drawn: Judged) -> None:
        case = drawn.case
        float64 = case.config.dtype == "float64"
        loss, g = drawn.exact if float64 else timed("reference", lambda: grads(case))
        oracle = timed("torch", lambda: torch_grads(case))
        context = timed("conditioning", drawn.context)
        tol = context.tolerance(oracle.grads)
        timed("compare", lambda: compare_gradients(case, loss, g, oracle.loss, oracle.grads, "torch", tolerance=tol))
        count[0] += 1

    if seed is not None:
        check = hypothesis_seed(seed)(check)
    torch_grads(make_case(LSTMConfig(), seed=0))  # torch's first call pays its start-up
    if ready is not None:
        ready()
    start = time.perf_counter()
    check()
    total = time.perf_counter() - start
    parts["generation"] = total - sum(parts.values())
    return {
        "examples": count[0],
        "seconds": total,
        "checks_per_second": count[0] / total,
        "ms_per_check": {name: 1e3 * value / count[0] for name, value in parts.items()},
    }


def fastest_throughput(runs: int = 3, examples: int = 200) -> dict[str, object]:
    """:func:`throughput` ``runs`` times in this process (the same derandomized examples each
    time): the fastest run's figures, and every run's checks per second under ``runs``.

    The machine's noise only ever slows a run, and on this VM it is large: the same code
    measured 70 to 120 checks per second within a few minutes, the torch oracle's part alone
    going from 2.2 to 3.8 ms per check.
    """
    results = [throughput(examples) for _ in range(runs)]
    fastest = max(results, key=lambda r: r["checks_per_second"])
    return {**fastest, "runs": [round(r["checks_per_second"], 1) for r in results]}


def parallel_throughput(examples: int = 200, workers: int = 2) -> dict[str, object]:
    """:func:`throughput` in ``workers`` processes at once (each its own Hypothesis seed and
    ``examples`` checks), as ``pytest -n`` runs the suite: checks per second of all of them,
    timed from a common start (after every worker's warm-up) to the last one's end."""

    context = multiprocessing.get_context("spawn")  # no fork of a process with BLAS and torch threads
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=_throughput_worker, args=(examples, k, barrier, results)) for k in range(workers)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get() for _ in processes]
    for p in processes:
        p.join()
    longest = max(o["seconds"] for o in outcomes)
    checks = sum(o["examples"] for o in outcomes)
    return {"workers": workers, "examples": checks, "seconds": longest, "checks_per_second": checks / longest}


def _throughput_worker(examples: int, seed: int, barrier, results) -> None:
    results.put(throughput(examples, seed=seed, ready=barrier.wait))


def fd_seconds_per_copy(case: Case, copies: int = 32) -> float:
    """Seconds per perturbed copy of the batched finite-difference forward (weight_hh_l0's
    first ``copies`` elements, the costliest kind: every batch row, every step)."""

    base = prepare(case)
    index = np.arange(min(copies, 4 * case.config.hidden_size**2))
    delta = np.full(index.size, 1e-5)
    partial_losses(base, "weight_hh_l0", index[:2], delta[:2])  # warm-up: pool and buffers
    return median_seconds(lambda: partial_losses(base, "weight_hh_l0", index, delta), 3, warmup=0) / index.size


def ci_times(junit_xml: str) -> dict[str, float]:
    """Seconds per test file from a pytest ``--junitxml`` report (summed over its tests)."""

    per_file: dict[str, float] = {}
    for case in ET.parse(junit_xml).iter("testcase"):
        name = (case.get("classname") or "?").replace(".", "/") + ".py"
        per_file[name] = per_file.get(name, 0.0) + float(case.get("time") or 0.0)
    return dict(sorted(per_file.items(), key=lambda kv: -kv[1]))
