"""The NumPy oracles on random float64 cases: the reference agrees with each, and each
catches a planted wrong gradient on its own.

The project's accuracy goals, per tensor against its scale (max |gradient|): central
differences within 1e-6, Richardson within 1e-9, the complex step within
1e-12, each plus the method's roundoff floor (see ``_check_full``: a gradient
that is 1e-6 of the loss cannot be resolved to 1e-6 of itself by any step);
the Taylor remainder slope 2 ± 0.2 for the reference and about 1 for a
planted wrong gradient. Agreement itself is judged by the one tolerance rule
with each oracle's own error estimate (as the registry does), and every element
must lie within its error bound. Sizes are kept small (hidden <= 4,
seq_len <= 12) so every full check takes milliseconds.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from lstm_gradcheck import reference
from lstm_gradcheck.oracles.compare import compare_gradients
from lstm_gradcheck.oracles.complex_step import complex_step_gradient
from lstm_gradcheck.oracles.directions import judging_noise
from lstm_gradcheck.oracles.finite_difference import central_gradient, richardson_gradient
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.oracles.taylor import taylor_judge
from lstm_gradcheck.oracles.tolerance import ORACLE_ERROR_FACTOR
from lstm_gradcheck.properties.counting import count_example
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, cases
from lstm_gradcheck.reference.layout import model_gradient_names

SMALL = DEFAULT_SPACE.restrict(dtype=("float64",), max_hidden=4, max_input=4, max_batch=4, long_seq=12)
GOALS = {"fd": 1e-6, "richardson": 1e-9, "complex-step": 1e-12}
FULL = {"fd": central_gradient, "richardson": richardson_gradient, "complex-step": complex_step_gradient}
#: The smallest planted error, in units of the loss's roundoff ε_L, that a planted-bug property draws.
RESOLVABLE = 1e4


def _check_full(case, oracle, goal=True):
    """The rule with the oracle's own bounds; every element within its bound; and the goal:
    ``|error| <= goal * scale + resolution`` per tensor, ``resolution`` being the method's
    roundoff floor (its bound's noise term at the base step; 0 for the complex step), as the
    tolerance rule's floor does for gradients that vanish below the whole gradient's roundoff."""
    loss, exact = reference.grads(case)
    result = FULL[oracle](case)
    tolerance = judging_context(case, exact=(loss, exact)).tolerance(result.grads)
    check = compare_gradients(
        case, loss, exact, result.loss, result.grads, oracle, tolerance=tolerance, oracle_errors=result.errors or None
    )
    note(f"case: {case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()
    resolution = float(result.details.get("resolution", 0.0))
    for name, bound in (result.errors or {}).items():
        over = np.abs(result.grads[name] - exact[name]) > bound
        assert not over.any(), f"{oracle}: {name} has {int(over.sum())} elements over their error bound"
    if not goal:
        return
    report = {}
    for name, g in result.grads.items():
        scale = float(np.max(np.abs(exact[name]), initial=0.0))
        err = float(np.max(np.abs(g - exact[name]), initial=0.0))
        report[name] = (err, GOALS[oracle] * scale + resolution)
    note(f"{oracle}: (max error, goal * scale + resolution {resolution:.3g}) per tensor: {report}")
    for name, (err, allowed) in report.items():
        assert err <= allowed, f"{oracle}: {name} off by {err:.3g} > {allowed:.3g}"


@given(cases(SMALL))
def test_reference_agrees_with_central_differences(case):
    count_example("reference = central FD (<= 1e-6 of scale)")
    _check_full(case, "fd")


@given(cases(SMALL))
def test_reference_agrees_with_richardson(case):
    count_example("reference = Richardson FD (<= 1e-9 of scale)")
    _check_full(case, "richardson")


@given(cases(SMALL))
def test_reference_agrees_with_complex_step(case):
    count_example("reference = complex step (<= 1e-12 of scale)")
    _check_full(case, "complex-step")


@settings(max_examples=50)
@given(cases(SMALL))
def test_taylor_slope_is_two_for_the_reference(case):
    count_example("Taylor slope 2 +- 0.2 for the reference")
    loss, grads = reference.grads(case)
    report = taylor_judge(judging_context(case, exact=(loss, grads)), loss, grads)
    slopes = {n: s for n, s in report.details["slopes"].items() if s is not None}
    shares = report.details["curvature_share"]
    note(f"slopes {report.details['slopes']}, curvature shares {shares}")
    assert report.verdict == "pass", report.details["summary"]
    # 2 ± 0.2 where the quadratic term carries the remainder; where the direction's curvature
    # nearly vanishes (share < 0.9) the cubic term shows and the slope lies between 2 and 3.
    for name, slope in slopes.items():
        upper = 2.2 if shares[name] >= 0.9 else 3.2
        assert 1.8 <= slope <= upper, (name, slope, shares[name])


@st.composite
def planted_bugs(draw, space=SMALL):
    """A case and the reference's gradients with one planted error: one element
    (among those at least a tenth of the tensor's scale) off by a relative 1e-3,
    or one gate's rows of a 4H tensor zeroed (its contribution dropped)."""
    case = draw(cases(space))
    _, exact = reference.grads(case)
    names = [n for n in model_gradient_names(case.config) if np.max(np.abs(exact[n])) > 0]
    assume(names)  # e.g. cross_entropy over one class: the loss is constant
    name = draw(st.sampled_from(names))
    wrong = {n: a.copy() for n, a in exact.items()}
    g = exact[name]
    big = np.flatnonzero(np.abs(g).ravel() >= 0.1 * np.max(np.abs(g)))
    flat = wrong[name].reshape(-1)
    i = int(draw(st.sampled_from(big.tolist())))
    sign = draw(st.sampled_from([1.0, -1.0]))
    # A difference of losses cannot resolve a gradient error below ~ε_L / h: at the largest step
    # any oracle here takes (central, 100 x 6e-6) that is 4e3 ε_L. Smaller plants (an h0 gradient
    # of 1e-13 behind a forget bias of -5) are beyond every finite-difference oracle by design.
    loss = reference.forward(case)[0].loss
    assume(1e-3 * abs(flat[i]) >= RESOLVABLE * judging_noise(judging_context(case), loss, exact))
    flat[i] *= 1.0 + sign * 1e-3
    return case, exact, wrong, name, i


@settings(max_examples=60)
@given(planted_bugs(), st.sampled_from(["fd", "richardson", "complex-step", "directional"]))
def test_each_oracle_catches_a_planted_wrong_element_on_its_own(bug, oracle):
    count_example("planted wrong element caught by each FD oracle alone")
    case, exact, wrong, name, i = bug
    if oracle in ("fd", "richardson"):
        # Beyond roundoff, a difference quotient is limited by the loss's curvature at its step: a
        # vanishing gradient of a deep stack can have a truncation bound above the plant. Such a plant
        # is below the oracle's stated resolution (its bound is checked to hold, above), not missed.
        bound = FULL[oracle](case, [name]).errors[name].reshape(-1)[i]
        assume(1e-3 * abs(exact[name].reshape(-1)[i]) > 2 * ORACLE_ERROR_FACTOR * bound)
    loss = reference.forward(case)[0].loss
    report = run_oracle(oracle, judging_context(case), loss, wrong)
    flagged = [t for t in report.check.tensors if t.status == "mismatch"]
    note(f"planted: {name} flat index {i}; {oracle} flagged {[t.describe() for t in flagged]}")
    assert report.verdict == "fail", f"{oracle} missed a relative 1e-3 error in {name}"
    assert [t.name for t in flagged] == [name]
    assert flagged[0].worst is not None and flagged[0].worst.index == np.unravel_index(i, wrong[name].shape)


@settings(max_examples=50)
# The plain LSTM: on the family's deep projected stacks (3 layers, proj_size 1, coupled gates,
# identity cell output) a relative 1e-3 plant in layer 0 can sit below the cubic term at the
# steps Taylor fits, so its slope stays near 2; the other oracles catch those plants (above).
@given(planted_bugs(SMALL.plain()))
def test_taylor_slope_is_about_one_for_a_planted_wrong_element(bug):
    count_example("Taylor slope ~1 for a planted wrong element")
    case, _, wrong, name, _ = bug
    loss = reference.forward(case)[0].loss
    report = taylor_judge(judging_context(case), loss, wrong)
    slope, odd = report.details["slopes"][name], report.details["odd_slopes"][name]
    share = report.details["curvature_share"][name]
    note(f"planted in {name}: slopes {report.details['slopes']}, odd parts {report.details['odd_slopes']}")
    note(f"curvature shares {report.details['curvature_share']}")
    assert report.verdict == "fail", report.details["summary"]
    # The odd part has no h² term: its slope is 1 for any wrong g (Note [Taylor remainder]).
    assert odd is not None and abs(odd - 1.0) <= 0.2, odd
    # The full remainder |a| h + |b| h² shows slope 1 only where the linear term carries it at
    # the fitted steps; where the curvature is a fair share there, the slope lies between 1 and 2.
    assert slope is not None
    upper = 1.2 if share is not None and share <= 0.1 else 2.2
    assert 0.8 <= slope <= upper, (slope, share)
