"""A correct implementation that supports only float32 cases (a GPU-minded user's kernel port).

Every float64 case raises NotImplementedError, so the harness counts it as
unsupported; float32 cases are computed in float32 and must pass.
"""

from typing import Any

import numpy as np
from textbook_lstm import grads as textbook_grads


def grads(case: Any) -> tuple[float, dict[str, np.ndarray]]:
    """The textbook gradients, float32 only."""
    if case.config.dtype != "float32":
        raise NotImplementedError(f"this implementation computes in float32 only, got a {case.config.dtype} case")
    loss, out = textbook_grads(case)
    # The textbook code computes in the case's dtype; make sure nothing was promoted to float64 on the way.
    for name, value in out.items():
        if value.dtype != np.float32:
            raise TypeError(f"{name} was computed in {value.dtype}, expected float32")
    return loss, out
