"""The tolerance rule: what an implementation's gradient may differ from an oracle's, per tensor.

Note [Tolerance rule]
---------------------
For a tensor with oracle values o and scale = max |o|, every element must satisfy
|a - o| <= rtol * scale + floor + conditioning (+ 4 x an FD oracle's own error estimate), with
rtol = 2 eps^(2/3) of the implementation's dtype, floor = 64 eps * the largest scale of any tensor
(a vanishing tensor is judged at the whole gradient's roundoff, not its own scale), and conditioning
the eps-level sensitivity of the exact gradient (:mod:`lstm_gradcheck.oracles.judging`); the loss
alike, its floor 64 eps * the size of the terms it adds up: one rule, printed with its numbers.

Note [Same-precision rule]
--------------------------
A torch-native implementation in float32 or bfloat16 may also err as much as SAME_PRECISION_FACTOR
times torch's own LSTM in that dtype (the worse of torch.nn.LSTM and the contract's equations in
torch) errs on the case: e the largest error/scale over its tensors (scales floored at 1e-3 of the
largest), each tensor allowed k e scale. bfloat16 has no rule of its own beyond one ulp of the
tensor and of the whole gradient, nor conditioning probes: torch's own error is what it carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lstm_gradcheck.reference.config import BFLOAT16, dtype_eps

__all__ = [
    "RTOL_EXPONENT",
    "FLOOR_ULPS",
    "CONDITIONING_SAFETY",
    "ILL_CONDITIONED_FRACTION",
    "VANISHING_FRACTION",
    "ORACLE_ERROR_FACTOR",
    "SAME_PRECISION_FACTOR",
    "SCALE_FLOOR",
    "relative_tolerance",
    "Tolerance",
    "make_tolerance",
]

RTOL_EXPONENT = 2.0 / 3.0
FLOOR_ULPS = 64.0
#: The conditioning allowance is this many times the largest change the eps-level probes saw.
CONDITIONING_SAFETY = 16.0
#: A tensor whose exact gradient those probes move by more than this share of its scale is not judged.
ILL_CONDITIONED_FRACTION = 1e-3
#: A tensor this much smaller than the largest gradient, and judged at the floor, is reported as vanishing.
VANISHING_FRACTION = 1e-3
#: An FD oracle's per-element error estimate enters the allowance this many times over.
ORACLE_ERROR_FACTOR = 4.0
#: k of Note [Same-precision rule]: a torch-native implementation may err k times torch's own LSTM.
SAME_PRECISION_FACTOR = 4.0
#: Scales below this share of the largest are floored to it when relative errors are compared.
SCALE_FLOOR = 1e-3


def relative_tolerance(dtype: str) -> float:
    """``2 * eps(dtype)^(2/3)``: 7.3e-11 for float64, 4.8e-5 for float32; bfloat16: one ulp,
    eps, its rule being torch's own error (Note [Same-precision rule])."""
    eps = dtype_eps(dtype)
    return eps if dtype == BFLOAT16 else 2.0 * eps**RTOL_EXPONENT


def _floor_ulps(dtype: str) -> float:
    return 1.0 if dtype == BFLOAT16 else FLOOR_ULPS


@dataclass(frozen=True)
class Tolerance:
    """The rule of Note [Tolerance rule] with its numbers for one comparison."""

    dtype: str
    rtol: float
    floor: float
    global_scale: float
    conditioning: Mapping[str, float] = field(default_factory=dict)
    oracle_error_factor: float = ORACLE_ERROR_FACTOR
    #: The size of what the loss adds up and rounds (judging.JudgingContext.magnitude); 0 if unknown.
    loss_magnitude: float = 0.0
    #: Note [Same-precision rule]: torch's own relative error e in this dtype (None: not used),
    #: and its absolute error on the loss.
    same_precision: float | None = None
    same_precision_loss: float = 0.0

    def ill_conditioned(self, name: str, scale: float) -> bool:
        """True when the problem, not the code, limits this tensor to < 3 digits in this dtype
        (bfloat16: when torch's own LSTM in bfloat16 gets less than one digit of it).

        An exactly zero exact gradient (a constant loss: cross-entropy over one class) has no
        digits to lose: it is judged, at the allowance the perturbations give it."""
        if self.dtype == BFLOAT16 and self.same_precision is not None:
            return scale > 0 and self.same_precision * max(scale, SCALE_FLOOR * self.global_scale) > 0.5 * scale
        probe = self.conditioning.get(name, 0.0) / CONDITIONING_SAFETY
        return scale > 0 and probe > ILL_CONDITIONED_FRACTION * scale

    def allowed(self, name: str, scale: float) -> float:
        """Allowed absolute error of tensor ``name`` with oracle scale ``scale``
        (before any per-element oracle error estimate)."""
        rule = self.rtol * scale + self.floor + self.conditioning.get(name, 0.0)
        if self.same_precision is None:
            return rule
        floored = max(scale, SCALE_FLOOR * self.global_scale)
        return max(rule, SAME_PRECISION_FACTOR * self.same_precision * floored)

    def allowed_loss(self, oracle_loss: float) -> float:
        """Allowed absolute error of the loss: rtol |L| + FLOOR_ULPS eps M + its conditioning,
        M the size of the loss's terms (at least |L|): a loss far smaller than its terms
        (a confident, right cross-entropy) carries only their absolute roundoff."""
        eps = dtype_eps(self.dtype)
        size = max(abs(oracle_loss), self.loss_magnitude)
        rule = self.rtol * abs(oracle_loss) + _floor_ulps(self.dtype) * eps * size + self.conditioning.get("loss", 0.0)
        return max(rule, SAME_PRECISION_FACTOR * self.same_precision_loss)

    def describe(self) -> str:
        cond = max(self.conditioning.values(), default=0.0)
        rtol = "eps" if self.dtype == BFLOAT16 else "2 eps^(2/3)"
        text = (
            f"|a - o| <= {self.rtol:.2g} * scale + {self.floor:.2g}"
            f" ({self.dtype}: rtol = {rtol}, floor = {_floor_ulps(self.dtype):g} eps * max scale "
            f"{self.global_scale:.3g}"
        )
        if cond > 0:
            text += f"; conditioning allowance up to {cond:.2g}"
        text += ")"
        if self.same_precision is not None:
            text += (
                f", or {SAME_PRECISION_FACTOR:g} x torch's own relative error in {self.dtype}, "
                f"{self.same_precision:.2g}, times the scale"
            )
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "dtype": self.dtype,
            "rtol": self.rtol,
            "floor": self.floor,
            "global_scale": self.global_scale,
            "conditioning": dict(self.conditioning),
            "rule": self.describe(),
        }


def make_tolerance(
    dtype: str,
    oracle_grads: Mapping[str, np.ndarray],
    conditioning: Mapping[str, float] | None = None,
    loss_magnitude: float = 0.0,
) -> Tolerance:
    """The tolerance for an implementation in ``dtype`` checked against ``oracle_grads``."""
    eps = dtype_eps(dtype)
    scales = [float(np.max(np.abs(g), initial=0.0)) for g in oracle_grads.values()]
    global_scale = max(scales, default=0.0)
    return Tolerance(
        dtype=dtype,
        rtol=relative_tolerance(dtype),
        floor=_floor_ulps(dtype) * eps * global_scale,
        global_scale=global_scale,
        conditioning=dict(conditioning or {}),
        loss_magnitude=0.0 if math.isnan(loss_magnitude) else loss_magnitude,
    )
