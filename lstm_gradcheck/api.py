"""The Python API for a user's own tests: check an implementation on a case, or search.

Failures raise exceptions named from :mod:`lstm_gradcheck`; inside a Hypothesis
test each failing example also notes the ``lstm-gradcheck report`` command that
rebuilds it, so a shrunk failure prints as one line of case and one command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from lstm_gradcheck.implementation import Implementation
from lstm_gradcheck.isolation import DEFAULT_TIMEOUT, as_implementation
from lstm_gradcheck.oracles.records import GradientMismatchError
from lstm_gradcheck.probing import supported_space
from lstm_gradcheck.properties import strategies
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, CaseSpace
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.verdicts import FAILED, NOTHING_CHECKED, UNSUPPORTED
from lstm_gradcheck.report import Report, build_report
from lstm_gradcheck.searching import report_command

__all__ = ["ImplementationFailedError", "NothingCheckedError", "assert_gradients_match", "cases"]


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


def cases(
    what: Callable | str | Implementation | CaseSpace | tuple[CaseSpace, ...] | None = None,
    *,
    in_process: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> st.SearchStrategy[Case]:
    """A Hypothesis strategy of random cases of the contract, for ``@given(cases(...))``.

    ``cases()`` draws from the whole space (the ``ci`` search profile's bounds: sizes from
    1, hidden up to 16, 1-3 layers, every loss and setting). ``cases(my_grads)`` (a
    function, an ``--impl`` spec or an implementation) draws only what that implementation
    supports: it is probed on tiny cases first, at the first draw, as ``search`` probes it
    (zero initial states, batch 1, one layer, ... ; see :func:`lstm_gradcheck.search`), so
    code that refuses most of the space does not fail Hypothesis's ``filter_too_much``
    check. ``cases(CaseSpace(...))`` draws from a space of your own. Every array is random
    and nonzero; a failure shrinks towards one layer, one step and size 1.

    Example, for code with one layer and c0 = 0::

        @gradcheck_settings
        @given(cases("path/to/adapter.py:grads"))
        def test_every_case(case):
            try:
                assert_gradients_match("path/to/adapter.py:grads", case)
            except NotImplementedError:  # a rare combination inside what it supports
                reject()

    Raises:
        NothingCheckedError: (at the first draw) the implementation refused every probe.
    """
    if what is None:
        return strategies.cases(DEFAULT_SPACE)
    if isinstance(what, (CaseSpace, tuple)):
        return strategies.cases(what)
    impl = as_implementation(what, in_process=in_process, timeout=timeout)
    return st.deferred(lambda: strategies.cases(_supported(impl)))


_SUPPORT: dict[int, tuple[Implementation, tuple[CaseSpace, ...]]] = {}


def _supported(impl: Implementation) -> tuple[CaseSpace, ...]:
    """The regions ``impl`` supports, probed once per implementation object."""
    known = _SUPPORT.get(id(impl))
    if known is None or known[0] is not impl:
        support = supported_space(impl)
        if not support.found:
            raise NothingCheckedError(
                f"{impl.name} refused every probe, so cases() has nothing to draw; it said: "
                + (" | ".join(support.refusals) or "nothing")
            )
        known = _SUPPORT[id(impl)] = (impl, support.spaces)
    return known[1]
