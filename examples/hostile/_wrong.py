"""The reference's answer with one gradient a little wrong: what every hostile implementation returns."""

from lstm_gradcheck import reference


def wrong_answer(case):
    loss, grads = reference.grads(case)
    name = "head.bias" if "head.bias" in grads else "bias_hh_l0"
    return loss, {**grads, name: grads[name] * 1.01}
