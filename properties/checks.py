"""The one way properties judge an implementation: through the oracle registry and the rule."""

from __future__ import annotations

from hypothesis import note

from lstm_gradcheck.oracles.judging import Answer, JudgingContext
from lstm_gradcheck.oracles.records import CheckResult
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.reference.case import GradsFn

__all__ = ["agree", "assert_agrees"]


def agree(impl: GradsFn | Answer, context: JudgingContext, oracle: str = "torch") -> CheckResult:
    """Compare an implementation with ``oracle`` on the context's case under the tolerance rule.

    ``impl`` is a ``grads(case)`` function, or its answer ``(loss, grads)`` when the caller
    has it: the float64 reference's answer is the context's own exact answer, which the
    property tests hand on rather than compute twice (Note [Judging context]).
    """
    loss, grads = impl if isinstance(impl, tuple) else impl(context.case)
    report = run_oracle(oracle, context, loss, grads)
    assert report.check is not None, f"oracle {oracle!r} skipped: {report.reason}"
    return report.check


def assert_agrees(impl: GradsFn | Answer, context: JudgingContext, oracle: str = "torch") -> CheckResult:
    """:func:`agree`, noting the case and records for Hypothesis, raising on a mismatch."""
    __tracebackhide__ = True
    check = agree(impl, context, oracle)
    note(f"case: {context.case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()
    return check
