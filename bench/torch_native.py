"""Torch-native implementations: no false alarm on a right autograd.Function LSTM, and its slip found.

The worked example (examples/torch_function/lstm_function.py, a torch.autograd.Function with a
hand-written backward) is searched in each dtype alone, float64, float32 and bfloat16, for 2,000
examples of the default space: a pass with every example judged is 0 false alarms in that many.
The same search on a copy with tanh' written 1 - tanh must find the slip in each dtype.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from lstm_gradcheck.isolation import close_workers
from lstm_gradcheck.oracles.tolerance import SAME_PRECISION_FACTOR
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE
from lstm_gradcheck.searching import search

__all__ = ["torch_native_study", "DTYPES"]

FOLDER = Path(__file__).resolve().parents[1] / "examples" / "torch_function"
DTYPES = ("float64", "float32", "bfloat16")
SLIP = ("dc = dc_next + dh * o * (1 - cells[t] ** 2)", "dc = dc_next + dh * o * (1 - cells[t])")


def torch_native_study(examples: int = 2000) -> dict[str, object]:
    """Per dtype: the right module's search (examples, judged, verdict, seconds) and the slip's."""
    out: dict[str, object] = {"examples": examples, "factor": SAME_PRECISION_FACTOR, "dtypes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(FOLDER / "lstm_function.py", tmp)
        path = Path(tmp) / "lstm_function.py"
        path.write_text(path.read_text().replace(*SLIP))
        for dtype in DTYPES:
            space = DEFAULT_SPACE.restrict(dtype=(dtype,))
            start = time.perf_counter()
            right = search(f"{FOLDER / 'lstm_function.py'}:LSTM", max_examples=examples, space=space)
            seconds = time.perf_counter() - start
            slip = search(f"{path}:LSTM", max_examples=200, space=space)
            out["dtypes"][dtype] = {
                "right": {"verdict": right.verdict, "examples": right.examples, "judged": right.judged,
                          "seconds": seconds, "why": right.why},
                "slip": {"verdict": slip.verdict, "found_after": slip.examples,
                         "case": None if slip.case is None else slip.case.describe()},
            }  # fmt: skip
    close_workers()
    return out
