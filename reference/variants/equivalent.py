"""Right derivations that differ only in form: the same BPTT on parameters stored another way.

Each converts the case's parameters into its own layout and its gradients
back, through the converters of :mod:`lstm_gradcheck.reference.converters`
(Note [Layout converters]); the derivation itself is ``Derivation(form=...)``. Together
with the correct ``Derivation()`` they must pass every oracle on every case.
"""

from __future__ import annotations

from lstm_gradcheck.reference.variants.derivation import Derivation
from lstm_gradcheck.reference.variants.forms import FUSED, SEPARATE, TF_IJFO, concat_form
from lstm_gradcheck.reference.variants.variant import Variant

__all__ = ["EQUIVALENT"]

EQUIVALENT: tuple[Variant, ...] = (
    Variant(
        name="bptt_reference_form",
        source="this project's derivation (reference/variants/derivation.py), the contract's torch layout",
        statement="δh^t = l'(t) + W_hᵀ δz^{t+1}; δc^t = f^{t+1} δc^{t+1} + δh^t o^t cell'(c^t); dW = Σ_t δz^t inputᵀ",
        expected="pass",
        grads=Derivation(),
    ),
    Variant(
        name="form_separate_w_u",
        source="layout of seed 002 §2: f = σ(W_f h^{t−1} + U_f x^t + b_f), per-gate W and U",
        statement=SEPARATE.statement,
        expected="pass",
        grads=Derivation(form=SEPARATE),
    ),
    Variant(
        name="form_concat_xh",
        source="layout of seeds 001 and 003: x_c = [x, h], W_g = [W_gx W_gh]",
        statement=concat_form("xh").statement,
        expected="pass",
        grads=Derivation(form=concat_form("xh")),
    ),
    Variant(
        name="form_concat_hx",
        source="layout of seed 004: W_f·[h_{t−1}, x_t]",
        statement=concat_form("hx").statement,
        expected="pass",
        grads=Derivation(form=concat_form("hx")),
    ),
    Variant(
        name="form_tf_ijfo",
        source="TensorFlow BasicLSTMCell (rnn_cell_impl.py): i, j, f, o = split(concat([x, h]) @ kernel + bias); "
        "f gets forget_bias",
        statement=TF_IJFO.statement,
        expected="pass",
        grads=Derivation(form=TF_IJFO),
    ),
    Variant(
        name="form_fused_4h",
        source="fused-kernel layout (as cuDNN and LSTMBlockCell): one (4H, I+H) weight and one bias",
        statement=FUSED.statement,
        expected="pass",
        grads=Derivation(form=FUSED),
    ),
)
