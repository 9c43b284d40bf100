"""The one way properties judge an implementation: through the oracle registry and the rule."""

from __future__ import annotations

from hypothesis import note

from oracles.compare import CheckResult, conditioning_allowance
from oracles.registry import run_oracle
from reference.case import Case, GradsFn
from reference.lstm import grads as reference_grads

__all__ = ["agree", "assert_agrees"]


def agree(impl: GradsFn, case: Case, oracle: str = "torch") -> CheckResult:
    """Run ``impl`` and ``oracle`` on ``case`` and compare them under the tolerance rule."""
    loss, grads = impl(case)
    exact = (loss, grads) if (impl is reference_grads and case.config.dtype == "float64") else None
    report = run_oracle(oracle, case, loss, grads, conditioning_allowance(case, exact=exact))
    assert report.check is not None, f"oracle {oracle!r} skipped: {report.reason}"
    return report.check


def assert_agrees(impl: GradsFn, case: Case, oracle: str = "torch") -> CheckResult:
    """:func:`agree`, noting the case and records for Hypothesis, raising on a mismatch."""
    check = agree(impl, case, oracle)
    note(f"case: {case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()
    return check
