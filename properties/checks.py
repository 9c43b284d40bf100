"""The one way properties judge an implementation: through the oracle registry and the rule."""

from __future__ import annotations

from hypothesis import note

from lstm_gradcheck.oracles.compare import Answer, CheckResult, conditioning_allowance
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.reference.case import Case, GradsFn
from lstm_gradcheck.reference.lstm import grads as reference_grads

__all__ = ["agree", "assert_agrees"]


def agree(impl: GradsFn, case: Case, oracle: str = "torch", exact: Answer | None = None) -> CheckResult:
    """Run ``impl`` and ``oracle`` on ``case`` and compare them under the tolerance rule.

    ``exact`` is the case's exact answer if the caller has it (a
    :class:`lstm_gradcheck.properties.strategies.Judged` draw's): the conditioning probes
    start from it, and for the float64 reference it is the implementation's
    answer itself, which is then not computed a second time.
    """
    is_exact = impl is reference_grads and case.config.dtype == "float64"
    if is_exact and exact is not None:
        loss, grads = exact
    else:
        loss, grads = impl(case)
        if is_exact:
            exact = (loss, grads)
    report = run_oracle(oracle, case, loss, grads, conditioning_allowance(case, exact=exact))
    assert report.check is not None, f"oracle {oracle!r} skipped: {report.reason}"
    return report.check


def assert_agrees(impl: GradsFn, case: Case, oracle: str = "torch", exact: Answer | None = None) -> CheckResult:
    """:func:`agree`, noting the case and records for Hypothesis, raising on a mismatch."""
    check = agree(impl, case, oracle, exact)
    note(f"case: {case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()
    return check
