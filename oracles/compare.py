"""The comparison rule: tolerances, per-tensor errors, mismatch records, the exception.

Note [Tolerance rule]
---------------------
For a gradient tensor with oracle values ``o`` and analytic values ``a``,
``scale = max |o|`` and the tensor passes when, element by element::

    |a - o| <= rtol * scale + floor + conditioning + k * oracle_error

* ``rtol = 2 * eps^(2/3)`` of the implementation's dtype: 7.3e-11 for float64,
  4.8e-5 for float32. Errors are judged against the tensor's scale, never
  elementwise against near-zero entries.
* ``floor = 64 * eps * G`` with G the largest scale of any checked tensor: a
  tensor whose gradient vanishes or underflows below roundoff of the whole
  gradient is judged at that roundoff level, not by its own tiny scale.
* ``conditioning`` (per tensor, absolute): 16 times the largest change of the
  exact gradient when every parameter and input, and every layer's states
  after every step, are perturbed by eps of the implementation's dtype
  (relative, random signs), and the loss head's gradient dy by eps times the
  terms it is the difference of (:func:`lstm_gradcheck.reference.losses.gradient_terms`),
  measured with the float64 reference. It is negligible for ordinary cases
  and large only for ill-conditioned ones (long identity-cell sequences,
  exploding states, a confident softmax whose dy = p - 1 is far smaller than
  p), where no implementation in that dtype can do better.

* ``oracle_error``: the oracle's own per-element error estimate
  (finite-difference oracles), times ``k = 4``.

A tensor whose exact gradient moves by more than 0.1% of its scale under the
eps-level perturbations (fewer than about 3 digits survive rounding at that
dtype; with roundoff injected at every step of a chaotic recurrence the real
error can be orders of magnitude larger) cannot be judged in that dtype: it is
reported with ``ill_conditioned = True`` and never counted as a mismatch, and
reports say so.

Every verdict prints the rule with its numbers (:meth:`Tolerance.describe`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import gradient_shapes, model_gradient_names
from lstm_gradcheck.reference.locations import Location, locate

__all__ = [
    "RTOL_EXPONENT",
    "FLOOR_ULPS",
    "CONDITIONING_SAFETY",
    "ILL_CONDITIONED_FRACTION",
    "ORACLE_ERROR_FACTOR",
    "Tolerance",
    "TensorResult",
    "LossResult",
    "CheckResult",
    "GradientMismatchError",
    "relative_tolerance",
    "Answer",
    "exact_answer",
    "conditioning_allowance",
    "make_tolerance",
    "compare_tensor",
    "compare_gradients",
    "unjudgeable",
]


RTOL_EXPONENT = 2.0 / 3.0
FLOOR_ULPS = 64.0
CONDITIONING_SAFETY = 16.0
ILL_CONDITIONED_FRACTION = 1e-3
#: A tensor this much smaller than the largest gradient, and judged at the floor, is reported as vanishing.
VANISHING_FRACTION = 1e-3
ORACLE_ERROR_FACTOR = 4.0
_CONDITIONING_PROBES = 2

OK, MISMATCH, NOT_PROVIDED = "ok", "mismatch", "not provided"


def relative_tolerance(dtype: str) -> float:
    """``2 * eps(dtype)^(2/3)``: 7.3e-11 for float64, 4.8e-5 for float32."""
    return 2.0 * float(np.finfo(np.dtype(dtype)).eps) ** RTOL_EXPONENT


#: An implementation's answer on a case: its loss and every gradient by name.
Answer = tuple[float, Mapping[str, np.ndarray]]


def exact_answer(case: Case) -> Answer:
    """The exact answer on ``case``: the float64 reference's loss and gradients at
    ``case.astype("float64")`` (the case itself when it is float64).

    Floating-point warnings are off: a case on which the model overflows is for
    :func:`unjudgeable` to name, not for numpy to warn about.
    """
    from lstm_gradcheck.reference.lstm import grads  # noqa: PLC0415 (oracles -> reference only when used)

    with np.errstate(all="ignore"):
        return grads(case.astype("float64"))


def conditioning_allowance(case: Case, exact: Answer | None = None) -> dict[str, float]:
    """Per-tensor absolute allowance for the problem's conditioning (Note [Tolerance rule]).

    Each probe reruns the exact float64 reference with every parameter and x,
    h0, c0 perturbed by ``eps(case dtype)`` relative, and every layer's new
    states h_t, c_t perturbed alike after every step (random signs, seeded
    from the case): rounding happens at every step, and in a chaotic
    recurrence that compounds far beyond one perturbation of the inputs. The
    head's dy is perturbed by eps times the terms it is formed from
    (:func:`lstm_gradcheck.reference.losses.gradient_terms`): found by the false-alarm study,
    a float32 softmax at p = 0.999 rounds dy = p - 1 to 6e-5 relative, which
    perturbing only the inputs put at a sixth of that.
    Returns ``CONDITIONING_SAFETY * max |change|`` per tensor, plus ``"loss"``.
    ``exact`` is :func:`exact_answer` on the case, if the caller has it.
    """
    # oracles -> reference only when used
    from lstm_gradcheck.reference.losses import gradient_terms, scored_steps  # noqa: PLC0415
    from lstm_gradcheck.reference.lstm import backward, forward  # noqa: PLC0415

    exact_case = case.astype("float64")
    eps = float(np.finfo(case.config.np_dtype).eps)
    loss0, g0 = exact_answer(case) if exact is None else exact
    rng = np.random.default_rng([0x5EED, 0 if case.seed is None else int(case.seed) & 0xFFFFFFFF])

    def signs(shape: tuple[int, ...]) -> np.ndarray:
        """Random ±1 (the values rng.choice([-1.0, 1.0]) would draw, at half its cost)."""
        return 2.0 * rng.integers(0, 2, size=shape) - 1.0

    def factors(shape: tuple[int, ...]) -> np.ndarray:
        return 1.0 + eps * signs(shape)

    cfg = exact_case.config
    scored = scored_steps(cfg, exact_case.targets, exact_case.lengths)
    inputs = exact_case.arrays()
    steps_shape = (2 * cfg.num_layers * cfg.seq_len, cfg.batch_size, cfg.hidden_size)
    # Every array's factors, then every step's for h_t and c_t of every layer, in one draw: the
    # generator hands out the same values whether drawn at once or array by array, at a tenth of the calls.
    ends = np.cumsum([a.size for a in inputs.values()])
    worst = dict.fromkeys([*g0, "loss"], 0.0)
    for _ in range(_CONDITIONING_PROBES):
        *pieces, steps = np.split(factors((int(ends[-1]) + math.prod(steps_shape),)), ends)
        arrays = {name: a * f.reshape(a.shape) for (name, a), f in zip(inputs.items(), pieces, strict=True)}
        step_factors = iter(steps.reshape(steps_shape))

        def per_step(h: np.ndarray, c: np.ndarray, step_factors=step_factors) -> None:
            h *= next(step_factors)
            c *= next(step_factors)

        result, cache = forward(exact_case.with_arrays(arrays), perturb=per_step)
        terms = gradient_terms(cache.dy, cfg, scored)
        dy = cache.dy + eps * terms * signs(terms.shape)
        loss1, g1 = result.loss, backward(replace(cache, dy=dy), overwrite_cache=True).grads
        for name in g0:
            worst[name] = max(worst[name], float(np.max(np.abs(np.asarray(g1[name]) - g0[name]), initial=0.0)))
        worst["loss"] = max(worst["loss"], abs(float(loss1) - float(loss0)))
    # The loss also gets the first-order bound of rounding every input: eps * sum |dL/dθ| |θ|.
    first_order = eps * sum(float(np.sum(np.abs(g0[n] * inputs[n]))) for n in g0 if n in inputs)
    worst["loss"] = max(worst["loss"], first_order)
    return {name: CONDITIONING_SAFETY * value for name, value in worst.items()}


def unjudgeable(case: Case, exact: Answer | None = None) -> str | None:
    """Why no implementation can be judged on ``case`` (None if it can).

    The exact answer (:func:`exact_answer`, or ``exact`` if the caller has it)
    must be finite and below sqrt(largest float of the case's dtype) in
    magnitude: beyond that the forward overflows (exploding identity-cell
    states, say) or a correct implementation in that dtype cannot represent
    the answer.
    """
    loss, g = exact_answer(case) if exact is None else exact
    limit = float(np.sqrt(np.finfo(case.config.np_dtype).max))
    values = [("the loss", np.asarray(loss, dtype=np.float64))] + [(f"d{n}", np.asarray(v)) for n, v in g.items()]
    for what, value in values:
        if not np.all(np.isfinite(value)):
            return f"the model overflows on this case: {what} is not finite even in float64"
        if np.max(np.abs(value), initial=0.0) > limit:
            return f"the exact {what} reaches {np.max(np.abs(value)):.3g}, beyond what {case.config.dtype} can carry"
    return None


@dataclass(frozen=True)
class Tolerance:
    """The rule of Note [Tolerance rule] with its numbers for one comparison."""

    dtype: str
    rtol: float
    floor: float
    global_scale: float
    conditioning: Mapping[str, float] = field(default_factory=dict)
    oracle_error_factor: float = ORACLE_ERROR_FACTOR

    def ill_conditioned(self, name: str, scale: float) -> bool:
        """True when the problem, not the code, limits this tensor to < 3 digits in this dtype.

        An exactly zero exact gradient (a constant loss: cross-entropy over one class) has no
        digits to lose: it is judged, at the allowance the perturbations give it."""
        probe = self.conditioning.get(name, 0.0) / CONDITIONING_SAFETY
        return scale > 0 and probe > ILL_CONDITIONED_FRACTION * scale

    def allowed(self, name: str, scale: float) -> float:
        """Allowed absolute error of tensor ``name`` with oracle scale ``scale``
        (before any per-element oracle error estimate)."""
        return self.rtol * scale + self.floor + self.conditioning.get(name, 0.0)

    def describe(self) -> str:
        cond = max(self.conditioning.values(), default=0.0)
        text = (
            f"|a - o| <= {self.rtol:.2g} * scale + {self.floor:.2g}"
            f" ({self.dtype}: rtol = 2 eps^(2/3), floor = {FLOOR_ULPS:g} eps * max scale {self.global_scale:.3g}"
        )
        if cond > 0:
            text += f"; conditioning allowance up to {cond:.2g}"
        return text + ")"

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
    dtype: str, oracle_grads: Mapping[str, np.ndarray], conditioning: Mapping[str, float] | None = None
) -> Tolerance:
    """The tolerance for an implementation in ``dtype`` checked against ``oracle_grads``."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    scales = [float(np.max(np.abs(g), initial=0.0)) for g in oracle_grads.values()]
    global_scale = max(scales, default=0.0)
    return Tolerance(
        dtype=dtype,
        rtol=relative_tolerance(dtype),
        floor=FLOOR_ULPS * eps * global_scale,
        global_scale=global_scale,
        conditioning=dict(conditioning or {}),
    )


@dataclass(frozen=True)
class TensorResult:
    """The mismatch record: one gradient tensor compared with one oracle.

    ``max_rel_err`` is ``max_abs_err / scale`` (error against the tensor's
    scale); ``worst`` locates the element with the largest error relative to
    what is allowed there; ``bad`` counts elements over the allowance.
    ``vanishing``: the tensor is over 1000x smaller than the largest gradient
    and judged at the roundoff floor (its relative error may then be large).
    """

    name: str
    status: str
    oracle: str
    max_abs_err: float = math.nan
    max_rel_err: float = math.nan
    scale: float = math.nan
    allowed: float = math.nan
    bad: int = 0
    size: int = 0
    worst: Location | None = None
    analytic_value: float = math.nan
    oracle_value: float = math.nan
    ill_conditioned: bool = False
    vanishing: bool = False
    #: max over elements of |a - o| / allowed there; NaN when the record has no elements
    #: (an oracle's allowance can differ per element, so max_abs_err / allowed is not it).
    worst_ratio: float = math.nan

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def severity(self) -> float:
        """How far over the allowance (>1 mismatches); for sorting worst first."""
        if self.status == NOT_PROVIDED:
            return -1.0
        if self.ill_conditioned:
            return 0.0
        if not math.isnan(self.worst_ratio):
            return self.worst_ratio
        return self.max_abs_err / self.allowed if self.allowed > 0 else (math.inf if self.max_abs_err > 0 else 0.0)

    def describe(self) -> str:
        if self.status == NOT_PROVIDED:
            return f"{self.name}: not provided by the implementation"
        if self.ill_conditioned:
            return (
                f"{self.name}: ill-conditioned in {self.oracle}'s comparison: eps-level input changes move the "
                f"exact gradient by more than its scale {self.scale:.3g}; not judged"
            )
        where = self.worst.describe() if self.worst is not None else self.name
        return (
            f"{self.name}: {self.status}, max abs err {self.max_abs_err:.3g} "
            f"(rel {self.max_rel_err:.3g} of scale {self.scale:.3g}, allowed {self.allowed:.3g}); "
            f"worst {where}: analytic {self.analytic_value:+.6g}, {self.oracle} {self.oracle_value:+.6g}; "
            f"{self.bad}/{self.size} elements over"
        )

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "status": self.status,
            "oracle": self.oracle,
            "max_abs_err": _json_float(self.max_abs_err),
            "max_rel_err": _json_float(self.max_rel_err),
            "scale": _json_float(self.scale),
            "allowed": _json_float(self.allowed),
            "elements_over": self.bad,
            "size": self.size,
            "ill_conditioned": self.ill_conditioned,
            "vanishing": self.vanishing,
        }
        if self.worst is not None:
            out.update(
                {
                    "analytic": _json_float(self.analytic_value),
                    "oracle_value": _json_float(self.oracle_value),
                    "location": self.worst.as_dict(),
                    "layer": self.worst.layer,
                    "gate": self.worst.gate,
                    "unit": self.worst.unit,
                    "column": self.worst.column,
                    "step": self.worst.step,
                }
            )
        return out


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class LossResult:
    """The scalar loss compared with one oracle's."""

    status: str
    analytic: float
    oracle_value: float
    abs_err: float
    allowed: float
    ill_conditioned: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "ill_conditioned": self.ill_conditioned,
            "implementation": _json_float(self.analytic),
            "oracle": _json_float(self.oracle_value),
            "abs_err": _json_float(self.abs_err),
            "allowed": _json_float(self.allowed),
        }


@dataclass(frozen=True)
class CheckResult:
    """An implementation's loss and gradients against one oracle."""

    oracle: str
    tolerance: Tolerance
    loss: LossResult | None
    tensors: tuple[TensorResult, ...]

    @property
    def ok(self) -> bool:
        loss_ok = self.loss is None or self.loss.status == OK
        return loss_ok and all(t.status != MISMATCH for t in self.tensors)

    @property
    def mismatches(self) -> tuple[TensorResult, ...]:
        return tuple(sorted((t for t in self.tensors if t.status == MISMATCH), key=lambda t: -t.severity))

    def describe(self) -> str:
        bad = self.mismatches
        lines = [
            f"[lstm-gradcheck] {len(bad)} of {len(self.tensors)} gradient tensors mismatch oracle "
            f"{self.oracle!r}; rule {self.tolerance.describe()}"
        ]
        if self.loss is not None and self.loss.status != OK:
            lines.append(
                f"  loss: implementation {self.loss.analytic!r}, {self.oracle} {self.loss.oracle_value!r} "
                f"(abs err {self.loss.abs_err:.3g}, allowed {self.loss.allowed:.3g})"
            )
        lines.extend("  " + t.describe() for t in bad)
        return "\n".join(lines)

    def raise_if_mismatch(self) -> None:
        if not self.ok:
            raise GradientMismatchError(self)


class GradientMismatchError(AssertionError):
    """Raised by tests and helpers when gradients disagree; ``.result`` holds the records."""

    __module__ = "lstm_gradcheck"  # public under this name (tracebacks say lstm_gradcheck.GradientMismatchError)

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.describe())
        self.result = result

    @property
    def mismatches(self) -> tuple[TensorResult, ...]:
        return self.result.mismatches


def compare_tensor(
    name: str,
    analytic: np.ndarray | None,
    oracle_value: np.ndarray,
    tolerance: Tolerance,
    hidden_size: int,
    oracle: str,
    oracle_error: np.ndarray | None = None,
) -> TensorResult:
    """Compare one gradient tensor under ``tolerance`` (Note [Tolerance rule])."""
    if analytic is None:
        return TensorResult(name, NOT_PROVIDED, oracle, size=int(np.size(oracle_value)))
    o = np.asarray(oracle_value, dtype=np.float64)
    a = np.asarray(analytic, dtype=np.float64)
    err = np.abs(a - o)
    scale = float(np.max(np.abs(o), initial=0.0))
    allowed = tolerance.allowed(name, scale)
    per_element = np.full(o.shape, allowed)
    if oracle_error is not None:
        per_element = per_element + tolerance.oracle_error_factor * np.asarray(oracle_error, dtype=np.float64)
    ill = tolerance.ill_conditioned(name, scale)
    # Written as "not within" so that a NaN anywhere counts as over (NaN > x is False).
    over = ~(err <= per_element) & (not ill)
    err = np.where(np.isfinite(err), err, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(per_element > 0, err / per_element, np.where(err > 0, np.inf, 0.0))
    flat = int(np.argmax(ratio)) if ratio.size else 0
    index = np.unravel_index(flat, o.shape) if o.size else ()
    max_abs = float(err.max(initial=0.0))
    return TensorResult(
        name=name,
        status=MISMATCH if over.any() else OK,
        oracle=oracle,
        max_abs_err=max_abs,
        max_rel_err=max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf),
        scale=scale,
        allowed=float(per_element.flat[flat]) if o.size else allowed,
        bad=int(over.sum()),
        size=int(o.size),
        worst=locate(name, tuple(int(i) for i in index), hidden_size) if o.size else None,
        analytic_value=float(a[index]) if o.size else math.nan,
        oracle_value=float(o[index]) if o.size else math.nan,
        ill_conditioned=ill,
        vanishing=tolerance.rtol * scale < tolerance.floor and scale < VANISHING_FRACTION * tolerance.global_scale,
        worst_ratio=float(ratio.flat[flat]) if o.size else math.nan,
    )


def compare_gradients(
    case: Case,
    loss: float | None,
    analytic: Mapping[str, np.ndarray],
    oracle_loss: float | None,
    oracle_grads: Mapping[str, np.ndarray],
    oracle: str,
    *,
    tolerance: Tolerance | None = None,
    oracle_errors: Mapping[str, np.ndarray] | None = None,
    names: Sequence[str] | None = None,
) -> CheckResult:
    """Compare an implementation's loss and gradients with one oracle's.

    Args:
        case: the case both were computed on.
        loss, analytic: the implementation's loss and gradients (missing keys
            are reported as "not provided").
        oracle_loss, oracle_grads: the oracle's (``oracle_loss`` may be None
            for oracles that do not evaluate the loss).
        oracle: the oracle's name, for the records.
        tolerance: defaults to :func:`make_tolerance` for the case's dtype
            with the case's :func:`conditioning_allowance`.
        oracle_errors: per-element error estimates of the oracle, if any.
        names: which tensors to compare (default: every name the oracle gave).
    """
    cfg = case.config
    if tolerance is None:
        tolerance = make_tolerance(cfg.dtype, oracle_grads, conditioning_allowance(case))
    shapes = gradient_shapes(cfg)
    order = [n for n in model_gradient_names(cfg) if n in oracle_grads]
    if names is not None:
        order = [n for n in order if n in names]
    results = []
    for name in order:
        oracle_value = np.asarray(oracle_grads[name]).reshape(shapes[name])
        error = None if oracle_errors is None else oracle_errors.get(name)
        results.append(
            compare_tensor(name, analytic.get(name), oracle_value, tolerance, cfg.hidden_size, oracle, error)
        )
    loss_result = None
    if loss is not None and oracle_loss is not None:
        allowed = (
            tolerance.rtol * abs(oracle_loss)
            + FLOOR_ULPS * float(np.finfo(cfg.np_dtype).eps) * abs(oracle_loss)
            + tolerance.conditioning.get("loss", 0.0)
        )
        abs_err = abs(float(loss) - float(oracle_loss))
        ill = tolerance.ill_conditioned("loss", abs(float(oracle_loss)))
        status = OK if (abs_err <= allowed or ill) else MISMATCH  # a NaN loss is never <= allowed
        loss_result = LossResult(status, float(loss), float(oracle_loss), abs_err, allowed, ill)
    return CheckResult(oracle, tolerance, loss_result, tuple(results))
