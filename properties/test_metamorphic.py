"""Properties that need no oracle: identities the exact gradient must satisfy."""

from __future__ import annotations

import numpy as np
from hypothesis import given

import reference
from properties.checks import assert_same_gradients
from properties.counting import count_example
from properties.strategies import DEFAULT_SPACE, cases
from reference.case import Case
from reference.layout import bias_ih, gate_slice, param_names

FLOAT64 = DEFAULT_SPACE.restrict(dtypes=("float64",))


def example(case: Case, b: int, steps: int | None = None) -> Case:
    """Batch element ``b`` of ``case`` as its own case, optionally truncated to ``steps``."""
    cfg = case.config
    t_len = cfg.seq_len if steps is None else steps
    keep = slice(b, b + 1)
    if cfg.loss_at == "every":
        targets = case.targets[:t_len, keep]
    else:
        targets = case.targets[keep]
    final = {}
    if cfg.final_state:
        final = {"dh_n": case.dh_n[:, keep], "dc_n": case.dc_n[:, keep]}
    return Case(
        cfg.replace(batch_size=1, seq_len=t_len),
        dict(case.params),
        case.x[:t_len, keep],
        case.h0[:, keep],
        case.c0[:, keep],
        targets,
        None if case.lengths is None or steps is not None else case.lengths[keep],
        seed=case.seed,
        **final,
    )


def batch_of(case: Case, examples: list[Case], per_example: list[tuple[float, dict]]) -> tuple[float, dict]:
    """Reassemble per-example results into the batch's: parameters add, x/h0/c0 concatenate."""
    cfg = case.config
    grads = {name: sum(g[name] for _, g in per_example) for name in param_names(cfg.num_layers)}
    x = np.zeros_like(case.x)
    for b, (_, g) in enumerate(per_example):
        x[: g["x"].shape[0], b] = g["x"][:, 0]
    grads["x"] = x
    grads["h0"] = np.concatenate([g["h0"] for _, g in per_example], axis=1)
    grads["c0"] = np.concatenate([g["c0"] for _, g in per_example], axis=1)
    return sum(loss for loss, _ in per_example), grads


@given(cases(FLOAT64))
def test_forget_bias_is_a_constant_on_the_forget_rows(case):
    """forget_bias b gives the loss and gradients of forget_bias 0 with b added to bias_ih's forget rows."""
    count_example("forget_bias = shifted bias_ih")
    cfg = case.config
    params = dict(case.params)
    rows = gate_slice("f", cfg.hidden_size)
    for k in range(cfg.num_layers):
        shifted = params[bias_ih(k)].copy()
        shifted[rows] += cfg.forget_bias
        params[bias_ih(k)] = shifted
    folded = case.replace(config=cfg.replace(forget_bias=0.0), params=params)
    expected_loss, expected = reference.grads(folded)
    loss, grads = reference.grads(case)
    assert_same_gradients(case, loss, grads, expected_loss, expected, "forget_bias folded")


@given(cases(FLOAT64.restrict(reductions=("sum",))))
def test_sum_reduction_is_the_sum_over_examples(case):
    """With reduction sum, the batch's gradients are the per-example gradients added (x, h0, c0 stacked)."""
    count_example("sum over batch = sum of examples")
    examples = [example(case, b) for b in range(case.config.batch_size)]
    expected_loss, expected = batch_of(case, examples, [reference.grads(e) for e in examples])
    loss, grads = reference.grads(case)
    assert_same_gradients(case, loss, grads, expected_loss, expected, "per-example sum")


@given(cases(FLOAT64.restrict(reductions=("sum",))))
def test_lengths_equal_truncated_sequences(case):
    """A padded batch gives the gradients of each sequence truncated to its length; padding gets zero dx."""
    count_example("lengths = truncated sequences")
    cfg = case.config
    lengths = case.lengths if case.lengths is not None else np.full(cfg.batch_size, cfg.seq_len)
    examples = [example(case, b, int(lengths[b])) for b in range(cfg.batch_size)]
    expected_loss, expected = batch_of(case, examples, [reference.grads(e) for e in examples])
    loss, grads = reference.grads(case)
    assert_same_gradients(case, loss, grads, expected_loss, expected, "truncated sequences")
    padding = np.arange(cfg.seq_len)[:, None] >= lengths[None, :]
    assert np.all(grads["x"][padding] == 0.0)


def single_step(case: Case) -> tuple[float, dict[str, np.ndarray]]:
    """One LSTM cell step (T = 1, one layer, mse at that step, sum), differentiated by hand in closed form."""
    p = case.params
    fb, x, h0, c0, y_t = case.config.forget_bias, case.x[0], case.h0[0], case.c0[0], case.targets
    hid = case.config.hidden_size

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    z = x @ p["weight_ih_l0"].T + h0 @ p["weight_hh_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
    zi, zf, zg, zo = (z[:, gate_slice(g, hid)] for g in "ifgo")
    i, f, g, o = sig(zi), sig(zf + fb), np.tanh(zg), sig(zo)
    c = f * c0 + i * g
    h = o * np.tanh(c)
    y = h @ p["head.weight"].T + p["head.bias"]
    r = y - y_t.reshape(y.shape)
    loss = float(np.sum(r * r))
    dy = 2 * r
    dh = dy @ p["head.weight"]
    dc = dh * o * (1 - np.tanh(c) ** 2)
    dz = np.concatenate(
        [dc * g * i * (1 - i), dc * c0 * f * (1 - f), dc * i * (1 - g**2), dh * np.tanh(c) * o * (1 - o)], axis=1
    )
    grads = {
        "weight_ih_l0": dz.T @ x,
        "weight_hh_l0": dz.T @ h0,
        "bias_ih_l0": dz.sum(0),
        "bias_hh_l0": dz.sum(0),
        "head.weight": dy.T @ h,
        "head.bias": dy.sum(0),
        "x": (dz @ p["weight_ih_l0"])[None],
        "h0": (dz @ p["weight_hh_l0"])[None],
        "c0": (dc * f)[None],
    }
    return loss, grads


@given(
    cases(
        FLOAT64.restrict(
            max_layers=1,
            short_seq=1,
            long_seq=2,
            losses=("mse",),
            reductions=("sum",),
            cell_outputs=("tanh",),
            final_state=(False,),
            with_lengths=False,
        )
    )
)
def test_seq_len_one_is_a_single_cell_step(case):
    """At T = 1 the reference equals one cell step differentiated in closed form."""
    count_example("seq_len 1 = one cell step")
    case = case.truncated(1)
    expected_loss, expected = single_step(case)
    loss, grads = reference.grads(case)
    assert set(grads) == set(expected)
    assert_same_gradients(case, loss, grads, expected_loss, expected, "closed-form cell step")
