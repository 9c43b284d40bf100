"""The judging context of a case: its exact answer, whether it can be judged, and its conditioning.

Note [Judging context]
----------------------
Every judgment of a case needs the same facts: the exact float64 answer, why the
case cannot be judged (if so), the conditioning allowance and the size of the
loss's terms. :func:`judging_context` computes them once per case, and the oracles,
the report, search, localization, the variants and the properties all take the
frozen :class:`JudgingContext`, so none recomputes the exact answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from lstm_gradcheck.oracles.tolerance import CONDITIONING_SAFETY, Tolerance, make_tolerance
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import BFLOAT16, dtype_eps
from lstm_gradcheck.reference.head import loss_magnitude
from lstm_gradcheck.reference.losses import gradient_terms, scored_steps
from lstm_gradcheck.reference.lstm import backward, forward, grads

__all__ = [
    "Answer",
    "JudgingContext",
    "judging_context",
    "exact_answer",
    "conditioning_probes",
    "unjudgeable",
    "CONDITIONING_PROBES",
]

#: An implementation's answer on a case: its loss and every gradient by name.
Answer = tuple[float, Mapping[str, np.ndarray]]
CONDITIONING_PROBES = 2


def exact_answer(case: Case) -> Answer:
    """The float64 reference's loss and gradients at ``case.astype("float64")``.

    Floating-point warnings are off: a case on which the model overflows is for
    :func:`unjudgeable` to name, not for numpy to warn about.
    """
    with np.errstate(all="ignore"):
        return grads(case.astype("float64"))


def unjudgeable(case: Case, exact: Answer) -> str | None:
    """Why no implementation can be judged on ``case`` (None if it can): the exact answer must be
    finite and below sqrt(largest float of the case's dtype), or a correct implementation in that
    dtype overflows or cannot represent it."""
    loss, g = exact
    limit = float(np.sqrt(np.finfo(case.config.np_dtype).max))
    values = [("the loss", np.asarray(loss, dtype=np.float64))] + [(f"d{n}", np.asarray(v)) for n, v in g.items()]
    for what, value in values:
        if not np.all(np.isfinite(value)):
            return f"the model overflows on this case: {what} is not finite even in float64"
        if np.max(np.abs(value), initial=0.0) > limit:
            return f"the exact {what} reaches {np.max(np.abs(value)):.3g}, beyond what {case.config.dtype} can carry"
    return None


def conditioning_probes(case: Case, exact: Answer) -> tuple[dict[str, float], float]:
    """The conditioning allowance per tensor (and ``"loss"``), and the size of the loss's terms.

    Each probe reruns the float64 reference with every parameter and x, h0, c0
    perturbed by eps of the case's dtype (relative, random signs seeded from the
    case), every layer's h_t, c_t perturbed alike after every step (rounding
    happens at every step, and a chaotic recurrence compounds it), and the
    head's dy by eps times the terms it is the difference of
    (:func:`lstm_gradcheck.reference.losses.gradient_terms`). The allowance is
    ``CONDITIONING_SAFETY * max |change|``; the loss's also has the first-order
    bound ``eps * sum |dL/dθ θ|``. The size of the loss's terms
    (:func:`lstm_gradcheck.reference.head.loss_magnitude`) comes from the first
    probe's forward, eps-close to the exact one.
    """
    exact_case = case.astype("float64")
    # bfloat16's own conditioning is what torch's LSTM in bfloat16 shows (Note [Same-precision rule]);
    # the probes give the loss's terms and float32's roundoff there.
    eps = dtype_eps("float32" if case.config.dtype == BFLOAT16 else case.config.dtype)
    loss0, g0 = exact
    rng = np.random.default_rng([0x5EED, 0 if case.seed is None else int(case.seed) & 0xFFFFFFFF])

    def signs(shape: tuple[int, ...]) -> np.ndarray:
        # One random bit per sign, unpacked from bytes: a tenth of rng.integers' time, which at
        # B=32, T=100, H=256 was a sixth of the probes' time.
        n = math.prod(shape)
        bits = np.unpackbits(np.frombuffer(rng.bytes((n + 7) // 8), dtype=np.uint8), count=n)
        return (2.0 * bits - 1.0).reshape(shape)

    cfg = exact_case.config
    scored = scored_steps(cfg, exact_case.targets, exact_case.lengths)
    inputs = exact_case.arrays()
    # h_t and c_t of every layer's direction after every step; h is P wide (P <= H), c is H wide.
    steps_shape = (2 * cfg.num_layers * cfg.num_directions * cfg.seq_len, cfg.batch_size, cfg.hidden_size)
    # Every array's factors and every step's, in one draw: the same values as array by array.
    ends = np.cumsum([a.size for a in inputs.values()])
    worst = dict.fromkeys([*g0, "loss"], 0.0)
    magnitude = math.nan
    for _ in range(CONDITIONING_PROBES):
        *pieces, steps = np.split(1.0 + eps * signs((int(ends[-1]) + math.prod(steps_shape),)), ends)
        arrays = {name: a * f.reshape(a.shape) for (name, a), f in zip(inputs.items(), pieces, strict=True)}
        step_factors = iter(steps.reshape(steps_shape))

        def per_step(h: np.ndarray, c: np.ndarray, step_factors=step_factors) -> None:
            h *= next(step_factors)[:, : h.shape[-1]]
            c *= next(step_factors)

        result, cache = forward(exact_case.with_arrays(arrays), perturb=per_step)
        if math.isnan(magnitude):
            magnitude = loss_magnitude(exact_case, result.y, result.h_n, result.c_n)
        terms = gradient_terms(cache.dy, cfg, scored)
        dy = cache.dy + eps * terms * signs(terms.shape)
        loss1, g1 = result.loss, backward(replace(cache, dy=dy), overwrite_cache=True).grads
        for name in g0:
            worst[name] = max(worst[name], float(np.max(np.abs(np.asarray(g1[name]) - g0[name]), initial=0.0)))
        worst["loss"] = max(worst["loss"], abs(float(loss1) - float(loss0)))
    first_order = eps * sum(float(np.sum(np.abs(g0[n] * inputs[n]))) for n in g0 if n in inputs)
    worst["loss"] = max(worst["loss"], first_order)
    return {name: CONDITIONING_SAFETY * value for name, value in worst.items()}, magnitude


@dataclass(frozen=True, eq=False)
class JudgingContext:
    """What every judgment of one case needs, computed once (Note [Judging context]).

    Attributes:
        case: the case, in the implementation's dtype.
        exact_case: ``case.astype("float64")``, what the oracles evaluate.
        exact: the float64 reference's (loss, gradients) on it.
        unjudgeable: why no implementation can be judged on it, or None.
        conditioning: the allowance per tensor and ``"loss"`` (empty when unjudgeable).
        magnitude: the size of the loss's terms, for roundoff bounds (NaN when unjudgeable).
    """

    case: Case
    exact_case: Case = field(repr=False)
    exact: Answer = field(repr=False)
    unjudgeable: str | None
    conditioning: Mapping[str, float] = field(default_factory=dict, repr=False)
    magnitude: float = math.nan
    same_precision: float | None = None
    same_precision_loss: float = 0.0

    @property
    def exact_loss(self) -> float:
        return float(self.exact[0])

    @property
    def exact_grads(self) -> Mapping[str, np.ndarray]:
        return self.exact[1]

    def tolerance(self, oracle_grads: Mapping[str, np.ndarray]) -> Tolerance:
        """The rule's numbers for the case's dtype against ``oracle_grads``."""
        tolerance = make_tolerance(self.case.config.dtype, oracle_grads, self.conditioning, self.magnitude)
        if self.same_precision is None:
            return tolerance
        return replace(tolerance, same_precision=self.same_precision, same_precision_loss=self.same_precision_loss)

    def with_same_precision(self, device: str = "cpu") -> JudgingContext:
        """This context with torch's own error in the case's dtype (Note [Same-precision rule]),
        for judging a torch-native implementation; float64 cases are judged by the rule alone."""
        if self.case.config.dtype == "float64" or self.unjudgeable is not None or self.same_precision is not None:
            return self
        from lstm_gradcheck.oracles.torch_precision import torch_errors  # noqa: PLC0415 (starts torch)

        relative, loss_error = torch_errors(self.case, self.exact, device)
        return replace(self, same_precision=relative, same_precision_loss=loss_error)


def judging_context(case: Case, exact: Answer | None = None) -> JudgingContext:
    """The :class:`JudgingContext` of ``case``; ``exact`` is its exact answer if the caller has it
    (the strategies' filter, or the float64 reference's own result)."""
    exact = exact_answer(case) if exact is None else exact
    reason = unjudgeable(case, exact)
    exact_case = case.astype("float64")
    if reason is not None:
        return JudgingContext(case, exact_case, exact, reason)
    conditioning, magnitude = conditioning_probes(case, exact)
    return JudgingContext(case, exact_case, exact, None, conditioning, magnitude)
