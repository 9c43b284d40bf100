"""The Python API for a user's own tests: check an implementation on a case, or search.

Failures raise exceptions named from :mod:`lstm_gradcheck`; inside a Hypothesis
test each failing example also notes the ``lstm-gradcheck report`` command that
rebuilds it, so a shrunk failure prints as one line of case and one command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import note
from hypothesis.control import currently_in_test_context

from lstm_gradcheck.implementation import Implementation
from lstm_gradcheck.isolation import DEFAULT_TIMEOUT, as_implementation
from lstm_gradcheck.oracles.records import GradientMismatchError
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.verdicts import FAILED, NOTHING_CHECKED, UNSUPPORTED
from lstm_gradcheck.report import Report, build_report
from lstm_gradcheck.searching import report_command

__all__ = ["ImplementationFailedError", "NothingCheckedError", "assert_gradients_match"]


class ImplementationFailedError(AssertionError):
    """The implementation raised, or returned something the contract does not allow."""


class NothingCheckedError(AssertionError):
    """Nothing could be judged: the implementation gave no gradient, or no oracle could judge the case."""


for _error in (ImplementationFailedError, NothingCheckedError):
    _error.__module__ = "lstm_gradcheck"


def _note(text: str) -> None:
    """Hypothesis's ``note`` inside a Hypothesis test (printed with the falsifying example), else nothing."""
    if currently_in_test_context():
        note(text)


def assert_gradients_match(
    impl: Callable | str | Implementation,
    case: Case,
    oracles: Sequence[str] = ("torch",),
    *,
    in_process: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Check ``impl`` on ``case``; raise with the located mismatch if it is wrong.

    Args:
        impl: a ``grads(case)`` function, an ``--impl`` spec string or an Implementation.
        case: the case, e.g. ``make_case(LSTMConfig(...), seed)`` or one drawn by ``cases()``.
        oracles: the oracles to compare against (default the torch oracle).
        in_process: run ``impl`` in this process instead of its worker process (not isolated).
        timeout: seconds one call may take before it counts as hung (a failure).

    Raises:
        GradientMismatchError: a gradient or the loss disagrees with an oracle (the
            message names tensor, gate, unit, column and step).
        ImplementationFailedError: the implementation raised or returned a malformed result.
        NothingCheckedError: nothing could be judged (no gradient returned, no oracle fits).
        NotImplementedError: the implementation does not support ``case`` (reject it in a
            Hypothesis test: ``hypothesis.reject()``).
    Returns:
        The :class:`~lstm_gradcheck.report.Report` when everything agrees.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    implementation = as_implementation(impl, in_process=in_process, timeout=timeout)
    report = build_report(case, implementation, oracles, localize=False)
    if report.outcome.status == UNSUPPORTED:
        raise NotImplementedError(f"{implementation.name} does not support this case: {report.outcome.error}")
    _note(f"reproduce: {report_command(case, implementation.name)}")
    if report.outcome.status == FAILED:
        raise ImplementationFailedError(f"{implementation.name} failed on {case.describe()}: {report.outcome.error}")
    for oracle in report.oracles:
        if oracle.check is not None and not oracle.check.ok:
            raise GradientMismatchError(oracle.check)
    if report.verdict == NOTHING_CHECKED:
        raise NothingCheckedError(f"{implementation.name} on {case.describe()}: {report.nothing_checked_reason}")
    return report
