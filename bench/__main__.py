"""``python -m bench``: the speed benchmarks and the studies, run from a checkout.

``python -m bench all`` measures everything (about 10 minutes on 2 cores; the
studies about 20 more with ``--studies``), writes the raw figures to
``bench/results.json`` and renders ``bench/RESULTS.md`` and the README's
summary table from them. One benchmark alone prints its JSON:
``python -m bench fd``, ``reference``, ``scaling``, ``throughput``,
``ci-times``; ``python -m bench render`` re-renders from ``bench/results.json``.
Nothing here is installed with lstm-gradcheck.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import results, speed, studies
from bench.fd import fd_benchmark
from bench.report_size import report_scaling, report_vs_gradcheck
from bench.torch_native import torch_native_study
from bench.worker import call_overhead, search_throughput

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "bench" / "results.json"
BENCHMARKS = ("fd", "reference", "scaling", "throughput", "worker", "report-size", "report-scaling", "ci-times")
BENCHMARKS += ("all", "render")


def _ci_times() -> dict[str, float]:
    """Run the test suite as CI does (ci profile, two workers) and time each file."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = str(Path(tmp) / "junit.xml")
        env = {**os.environ, "HYPOTHESIS_PROFILE": "ci"}
        subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
            cwd=ROOT, env=env, check=False, capture_output=True,
        )  # fmt: skip
        return speed.ci_times(junit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "benchmark",
        choices=BENCHMARKS,
        help="fd: the full-gradient oracles vs torch's gradcheck; reference: the reference vs torch.nn.LSTM; "
        "scaling: time against T and H; throughput: checks per second; worker: the worker process's cost per call "
        "and in a search; report-size: the report at B32 T100 I128 H256 against gradcheck's fast mode; "
        "report-scaling: report time against T and H; ci-times: seconds per test file; "
        "all: every one, then render; render: bench/RESULTS.md and the README's table from bench/results.json",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of each method (>= 3; medians are reported)")
    parser.add_argument("--seed", type=int, default=0, help="the case's seed")
    parser.add_argument("--studies", action="store_true", help="with all: also the false-alarm and sensitivity studies")
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error("--repeats: expected at least 3")
    if args.benchmark == "render":
        results.write(json.loads(RESULTS_JSON.read_text()), ROOT)
        return 0
    runs = {
        "fd": lambda: fd_benchmark(args.repeats, args.seed),
        "reference": lambda: speed.reference_vs_torch(repeats=max(args.repeats, 7)),
        "scaling": lambda: speed.scaling(batched_fd=speed.fd_seconds_per_copy),
        "throughput": lambda: {**speed.fastest_throughput(), "two_workers": speed.parallel_throughput(workers=2)},
        "worker": lambda: {"calls": call_overhead(), "search": search_throughput()},
        "ci-times": _ci_times,
        "report-size": lambda: report_vs_gradcheck(args.seed),
        "report-scaling": lambda: report_scaling(args.seed),
    }
    if args.studies:
        runs["false_alarms"] = lambda: {
            "torch": studies.false_alarm_study(20000, workers=2),
            "numpy": studies.false_alarm_study(1000, workers=2, oracles=studies.NUMPY_ORACLES),
        }
        runs["sensitivity"] = lambda: studies.sensitivity_study(200)
        runs["torch_native"] = lambda: torch_native_study(2000)
    chosen = list(runs) if args.benchmark == "all" else [args.benchmark]
    data: dict[str, object] = {
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": speed.environment(),
    }
    for name in chosen:
        data[name.replace("-", "_")] = runs[name]()
    if args.benchmark != "all":
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if RESULTS_JSON.exists() and not args.studies:  # keep the last studies' figures
        previous = json.loads(RESULTS_JSON.read_text())
        data.update({k: v for k, v in previous.items() if k in ("false_alarms", "sensitivity", "torch_native")})
    RESULTS_JSON.write_text(json.dumps(data, indent=2) + "\n")
    results.write(data, ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
