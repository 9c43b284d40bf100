"""The one way properties judge an implementation: through the oracle registry and the rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from hypothesis import note

from oracles.compare import CheckResult, compare_gradients, conditioning_allowance, make_tolerance
from oracles.registry import run_oracle
from reference.case import Case

__all__ = ["GradsFn", "agree", "assert_agrees", "assert_same_gradients"]

GradsFn = Callable[[Case], tuple[float, Mapping[str, np.ndarray]]]


def agree(impl: GradsFn, case: Case, oracle: str = "torch") -> CheckResult:
    """Run ``impl`` and ``oracle`` on ``case`` and compare them under the tolerance rule."""
    loss, grads = impl(case)
    report = run_oracle(oracle, case, loss, grads, conditioning_allowance(case))
    assert report.check is not None, f"oracle {oracle!r} skipped: {report.reason}"
    return report.check


def assert_agrees(impl: GradsFn, case: Case, oracle: str = "torch") -> CheckResult:
    """:func:`agree`, noting the case and records for Hypothesis, raising on a mismatch."""
    check = agree(impl, case, oracle)
    note(f"case: {case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()
    return check


def assert_same_gradients(
    case: Case,
    loss: float,
    grads: Mapping[str, np.ndarray],
    expected_loss: float,
    expected: Mapping[str, np.ndarray],
    what: str,
) -> CheckResult:
    """Two computations of the same quantity agree under the rule (for metamorphic properties)."""
    tolerance = make_tolerance(case.config.dtype, expected, conditioning_allowance(case))
    check = compare_gradients(case, loss, grads, expected_loss, expected, what, tolerance=tolerance)
    note(f"case: {case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()
    return check
