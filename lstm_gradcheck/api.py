"""The Python API for a user's own tests: check an implementation on a case, or search."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lstm_gradcheck.implementation import Implementation, as_implementation
from lstm_gradcheck.oracles.compare import GradientMismatchError
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.report import Report, build_report

__all__ = ["ImplementationFailedError", "as_implementation", "assert_gradients_match"]


class ImplementationFailedError(AssertionError):
    """The implementation raised, or returned something the contract does not allow."""


def assert_gradients_match(
    impl: Callable | str | Implementation, case: Case, oracles: Sequence[str] = ("torch",)
) -> Report:
    """Check ``impl`` on ``case``; raise with the located mismatch if it is wrong.

    Raises:
        GradientMismatchError: a gradient or the loss disagrees with an oracle (the
            message names tensor, gate, unit, column and step).
        ImplementationFailedError: the implementation raised or returned a malformed result.
        NotImplementedError: the implementation does not support ``case``.
    Returns:
        The :class:`Report` when everything agrees.
    """
    implementation = as_implementation(impl)
    report = build_report(case, implementation, oracles, localize=False)
    if report.outcome.status == "unsupported":
        raise NotImplementedError(f"{implementation.name} does not support this case: {report.outcome.error}")
    if report.outcome.status == "failed":
        raise ImplementationFailedError(f"{implementation.name} failed on {case.describe()}: {report.outcome.error}")
    for oracle in report.oracles:
        if oracle.check is not None and not oracle.check.ok:
            raise GradientMismatchError(oracle.check)
    return report
