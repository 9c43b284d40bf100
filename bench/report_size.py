"""A report at the sizes users run, against ``torch.autograd.gradcheck(fast_mode=True)``, in one process.

:func:`report_vs_gradcheck` times ``lstm-gradcheck report`` (the reference, default oracles, the
default budget) at B=32, T=100, I=128, H=256, O=8, with 1 and 2 layers, in float64 and float32,
and ``gradcheck(fast_mode=True)`` on the same model as torch.nn.LSTM in float64 (gradcheck needs
float64) right after it: the ratio is what the README shows, since absolute seconds differ 2x
between machines of one kind. :func:`report_scaling` times the report against T and H.
"""

from __future__ import annotations

import time

from bench.yardsticks import time_gradcheck
from lstm_gradcheck.budget import DEFAULT_BUDGET
from lstm_gradcheck.implementation import reference_implementation
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.verdicts import SKIPPED
from lstm_gradcheck.report import build_report

__all__ = ["REAL_SIZE", "report_vs_gradcheck", "report_scaling"]

REAL_SIZE = dict(
    batch_size=32, seq_len=100, input_size=128, hidden_size=256, output_size=8, forget_bias=0.0, final_state=False
)


def _timed_report(config: LSTMConfig, seed: int = 0) -> dict[str, object]:
    case = make_case(config, seed=seed)
    start = time.perf_counter()
    report = build_report(case, reference_implementation())
    seconds = time.perf_counter() - start
    judged = [o.name for o in report.oracles if o.verdict != SKIPPED]
    every = [
        o.name
        for o in report.oracles
        if o.verdict != SKIPPED and o.name not in ("torch", "torch-nn") and o.check is not None
        and all(t.status != "not provided" for t in o.check.tensors)
    ]  # fmt: skip
    return {
        "seconds": seconds,
        "verdict": report.verdict,
        "judged_by": judged,
        "autodiff_free_judging_every_tensor": every,
        "skipped": {o.name: o.reason for o in report.oracles if o.verdict == SKIPPED},
    }


def report_vs_gradcheck(seed: int = 0) -> dict[str, object]:
    """The report and gradcheck(fast_mode=True) on B32 T100 I128 H256, 1 and 2 layers, float64 and float32."""
    rows = []
    for layers in (1, 2):
        gradcheck = time_gradcheck(make_case(LSTMConfig(**REAL_SIZE, num_layers=layers), seed=seed), fast_mode=True)
        for dtype in ("float64", "float32"):
            report = _timed_report(LSTMConfig(**REAL_SIZE, num_layers=layers, dtype=dtype), seed)
            rows.append(
                {
                    "layers": layers,
                    "dtype": dtype,
                    **report,
                    "gradcheck_fast_seconds": gradcheck.seconds,
                    "gradcheck_passed": gradcheck.passed,
                    "ratio": report["seconds"] / gradcheck.seconds,
                }
            )
    return {"size": REAL_SIZE, "budget": DEFAULT_BUDGET, "rows": rows}


def report_scaling(seed: int = 0) -> dict[str, object]:
    """Report seconds against T (H = 64) and against H (T = 100), B = 8, I = 32, float64."""
    base = dict(batch_size=8, input_size=32, output_size=8, forget_bias=0.0, final_state=False)
    by_t = {t: _timed_report(LSTMConfig(**base, hidden_size=64, seq_len=t), seed) for t in (10, 100, 500, 2000)}
    by_h = {h: _timed_report(LSTMConfig(**base, seq_len=100, hidden_size=h), seed) for h in (8, 64, 256, 1024)}
    return {
        "budget": DEFAULT_BUDGET,
        "seq_len": {str(t): {"seconds": r["seconds"], "judged_by": r["judged_by"]} for t, r in by_t.items()},
        "hidden_size": {str(h): {"seconds": r["seconds"], "judged_by": r["judged_by"]} for h, r in by_h.items()},
    }
