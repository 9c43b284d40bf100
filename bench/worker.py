"""What running the checked code in a worker process costs: per call, and in a whole search.

The same implementation runs in its worker and in process (``in_process=True``, how every
implementation ran before workers), side by side in one process: per call on the built-in
case and on the real-size case (B=32, T=100, I=128, H=256), and the checks per second of the
default search (200 examples, seed 0) on the textbook implementation.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from lstm_gradcheck.isolation import as_implementation, close_workers
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.searching import search

__all__ = ["call_overhead", "search_throughput", "SPEC", "SEARCH_SPEC"]

SPEC = "lstm_gradcheck.reference:grads"
SEARCH_SPEC = str(Path(__file__).resolve().parents[1] / "examples" / "impls" / "ok_textbook.py") + ":grads"
CASES = {
    "built-in case (B=3, T=6, H=5, 2 layers)": LSTMConfig(),
    "real size (B=32, T=100, I=128, H=256)": LSTMConfig(
        batch_size=32, seq_len=100, input_size=128, hidden_size=256, output_size=8, num_layers=1
    ),
}


def _median_call(impl, case, repeats: int) -> float:
    impl.call(case)  # untimed: imports, first-touch of memory
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        outcome = impl.call(case)
        times.append(time.perf_counter() - start)
        assert outcome.status == "ok", outcome.error
    return statistics.median(times)


def call_overhead(repeats: int = 21) -> list[dict[str, object]]:
    """Per case: the median seconds of one call in the worker and in process, and their difference."""
    worker = as_implementation(SPEC)
    local = as_implementation(SPEC, in_process=True)
    rows = []
    for label, config in CASES.items():
        case = make_case(config, seed=0)
        in_worker = _median_call(worker, case, repeats if config.seq_len < 50 else max(5, repeats // 3))
        in_process = _median_call(local, case, repeats if config.seq_len < 50 else max(5, repeats // 3))
        rows.append(
            {
                "case": label,
                "worker_s": in_worker,
                "in_process_s": in_process,
                "overhead_s": in_worker - in_process,
                "case_bytes": sum(a.nbytes for a in case.arrays().values()),
            }
        )
    close_workers()
    return rows


def search_throughput(runs: int = 3, max_examples: int = 200) -> dict[str, object]:
    """Checks per second of the default search, in the worker and in process (the fastest of ``runs`` each,
    alternating)."""
    rates: dict[str, list[float]] = {"worker": [], "in_process": []}
    for _ in range(runs):
        for mode, values in rates.items():
            start = time.perf_counter()
            result = search(SEARCH_SPEC, max_examples=max_examples, seed=0, in_process=mode == "in_process")
            seconds = time.perf_counter() - start
            assert result.verdict == "pass", result.why
            values.append(result.examples / seconds)
    close_workers()
    best = {mode: max(values) for mode, values in rates.items()}
    return {
        "spec": "examples/impls/ok_textbook.py:grads",
        "max_examples": max_examples,
        "checks_per_second": best,
        "all_runs": rates,
        "worker_share_of_in_process": best["worker"] / best["in_process"],
        "note": "whole search command time, probing included, as a user waits for it",
    }
