"""Every oracle by its CLI name, with one way to run it on an implementation's result.

An oracle either computes the full gradient (``torch``, ``torch-nn``, ``fd``,
``complex-step``), which is then compared under the one tolerance rule, or
judges the implementation's gradient directly (``taylor``, ``directional``).
Either way it returns an :class:`OracleReport` with its verdict, seconds and
forward-pass count, which the report prints and puts in the JSON.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from lstm_gradcheck.oracles.compare import CheckResult, compare_gradients, make_tolerance
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig

__all__ = [
    "OracleReport",
    "OracleSpec",
    "ORACLES",
    "oracle_names",
    "oracle_help",
    "register",
    "run_oracle",
    "default_oracles",
    "reference_loss",
    "FullGradient",
    "LossFn",
    "JudgeFn",
    "OracleAbstains",
]


@dataclass(frozen=True)
class OracleReport:
    """What one oracle said about one implementation on one case.

    ``verdict`` is "pass", "fail" or "skipped" (with ``reason``); ``check``
    holds the per-tensor records; ``details`` holds oracle-specific extras
    (e.g. the Taylor slopes) for the report and JSON.
    """

    name: str
    verdict: str
    seconds: float
    forward_passes: int
    check: CheckResult | None = None
    reason: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "verdict": self.verdict,
            "seconds": self.seconds,
            "forward_passes": self.forward_passes,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.check is not None:
            out["tolerance"] = self.check.tolerance.describe()
        if self.details:
            out["details"] = dict(self.details)
        return out


class OracleAbstains(Exception):
    """Raised by an oracle that cannot bound its answer on a case; the message says why
    and run_oracle reports the oracle as skipped with it."""


@dataclass(frozen=True)
class FullGradient:
    """A full-gradient oracle's answer: loss, gradients, optional per-element
    error estimates, and how many forward passes (of the whole case) it cost."""

    loss: float | None
    grads: Mapping[str, np.ndarray]
    forward_passes: int
    errors: Mapping[str, np.ndarray] | None = None
    details: Mapping[str, object] = field(default_factory=dict)


LossFn = Callable[[Case], float]
"""Evaluates the loss of a float64 case: the reference's forward by default, or an
implementation's own loss (so an implementation is checked against its own forward)."""

JudgeFn = Callable[[Case, float, Mapping[str, np.ndarray], Mapping[str, float], LossFn], OracleReport]
"""judge(case, loss, grads, conditioning, loss_fn) -> OracleReport, for oracles that
judge an implementation's gradient directly instead of computing their own."""


@dataclass(frozen=True)
class OracleSpec:
    """One oracle; exactly one of ``gradient`` (full-gradient oracles) and ``judge`` is set.

    ``unfit(config)`` says why the oracle cannot judge a case at all (e.g.
    torch.nn.LSTM cannot express an identity cell); ``costly(config)`` why it
    is left out of the default set (e.g. the full finite-difference check of
    a large case would take minutes). An oracle asked for by name still runs
    when it is only costly.
    """

    name: str
    summary: str
    unfit: Callable[[LSTMConfig], str | None]
    gradient: Callable[[Case], FullGradient] | None = None
    judge: JudgeFn | None = None
    costly: Callable[[LSTMConfig], str | None] = lambda config: None


ORACLES: dict[str, OracleSpec] = {}


def register(spec: OracleSpec) -> OracleSpec:
    ORACLES[spec.name] = spec
    return spec


def oracle_names() -> tuple[str, ...]:
    _load_builtin()
    return tuple(ORACLES)


def oracle_help() -> str:
    """One line per oracle, ``name: summary``, for the command line's help."""
    _load_builtin()
    width = max(len(name) for name in ORACLES)
    return "\n".join(f"  {name:<{width}}  {spec.summary}" for name, spec in ORACLES.items())


def default_oracles(config: LSTMConfig) -> tuple[str, ...]:
    """Every oracle that can judge the case and fits its size (the CLI's default)."""
    _load_builtin()
    return tuple(name for name, spec in ORACLES.items() if spec.unfit(config) is None and spec.costly(config) is None)


def reference_loss(case: Case) -> float:
    """The contract model's loss by the reference's forward pass, in the case's dtype."""
    from lstm_gradcheck.reference.lstm import forward  # noqa: PLC0415

    return forward(case)[0].loss


def run_oracle(
    name: str,
    case: Case,
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    conditioning: Mapping[str, float],
    loss_fn: LossFn | None = None,
    *,
    requested: bool = False,
) -> OracleReport:
    """Run oracle ``name`` on ``case`` and judge the implementation's ``loss``/``grads``.

    ``loss_fn`` is what judging oracles differentiate numerically (default:
    :func:`reference_loss`); full-gradient oracles ignore it. ``requested``
    (asked for by name) runs an oracle that is only costly for the case.
    """
    _load_builtin()
    spec = ORACLES[name]
    reason = spec.unfit(case.config) or (None if requested else spec.costly(case.config))
    if reason is not None:
        return OracleReport(name, "skipped", 0.0, 0, reason=reason)

    start = time.perf_counter()
    try:
        if spec.judge is not None:
            report = spec.judge(case, loss, grads, conditioning, loss_fn or reference_loss)
            return dataclasses.replace(report, seconds=time.perf_counter() - start)
        answer = spec.gradient(case)
    except OracleAbstains as abstained:
        return OracleReport(name, "skipped", time.perf_counter() - start, 0, reason=str(abstained))
    seconds = time.perf_counter() - start
    tolerance = make_tolerance(case.config.dtype, answer.grads, conditioning)
    check = compare_gradients(
        case, loss, grads, answer.loss, answer.grads, name, tolerance=tolerance, oracle_errors=answer.errors
    )
    return OracleReport(
        name, "pass" if check.ok else "fail", seconds, answer.forward_passes, check, details=answer.details
    )


_LOADED = False


def _load_builtin() -> None:
    """Import the built-in oracle modules (they register themselves)."""
    global _LOADED  # noqa: PLW0603
    if _LOADED:
        return
    _LOADED = True
    import lstm_gradcheck.oracles.builtin  # noqa: F401, PLC0415
