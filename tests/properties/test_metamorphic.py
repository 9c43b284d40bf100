"""Properties that need no oracle: identities the exact gradient must satisfy (see metamorphic.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, note

from lstm_gradcheck import reference
from lstm_gradcheck.properties.counting import count_example
from lstm_gradcheck.properties.metamorphic import batch_additivity, forget_bias_fold, lengths_truncation, single_step
from lstm_gradcheck.properties.strategies import active_space, cases
from lstm_gradcheck.reference.case import Case

SPACE = active_space()  # the thorough profile draws long sequences and saturated gates
FLOAT64 = SPACE.restrict(dtype=("float64",))


def _holds(check, case: Case) -> None:
    assert check is not None, "the property does not apply to this case: the strategy is wrong"
    note(f"case: {case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()


@given(cases(FLOAT64.restrict(nonzero_forget_bias=True)))
def test_forget_bias_is_a_constant_on_the_forget_rows(case):
    """forget_bias b gives the loss and gradients of forget_bias 0 with b added to bias_ih's forget rows."""
    count_example("forget_bias = shifted bias_ih")
    _holds(forget_bias_fold(reference.grads, case), case)


@given(cases(FLOAT64.restrict(reduction=("sum",), min_batch=2)))
def test_sum_reduction_is_the_sum_over_examples(case):
    """With reduction sum, the batch's gradients are the per-example gradients added (x, h0, c0 stacked)."""
    count_example("sum over batch = sum of examples")
    _holds(batch_additivity(reference.grads, case), case)


@given(cases(FLOAT64.restrict(reduction=("sum",), require_lengths=True)))
def test_lengths_equal_truncated_sequences(case):
    """A padded batch gives the gradients of each sequence truncated to its length; padding gets zero dx."""
    count_example("lengths = truncated sequences")
    _holds(lengths_truncation(reference.grads, case), case)
    padding = np.arange(case.config.seq_len)[:, None] >= case.lengths[None, :]
    assert np.all(reference.grads(case)[1]["x"][padding] == 0.0)


@given(cases(FLOAT64.plain().restrict(max_layers=1, with_lengths=False)))
def test_seq_len_one_is_a_single_cell_step(case):
    """At T = 1 the reference equals one cell step differentiated in closed form (every loss head;
    the plain LSTM, the closed form's model)."""
    count_example("seq_len 1 = one cell step")
    case = case.truncated(1)
    _holds(single_step(reference.grads, case), case)
