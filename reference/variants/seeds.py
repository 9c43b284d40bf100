"""The seed documents' own derivations (seed 000 … 004, described in docs/seeds.md), as written.

Each seed derives the LSTM for its own setting (:class:`Convention`); a case
outside it raises ``NotImplementedError``. Where a seed's text and its code
differ, both are here. Verdicts and minimal conditions were measured with
this harness's random nonzero h0 and c0, whose gradients it checks too: three
text readings (seed 001's "s(t) affects L(t+1) only via h(t+1)", seed 002's
printed Jacobian and its recursion without the cell path) then fail one step
earlier than a hand check with zero states shows, on c0 or h0 alone (see
each entry's note).
"""

from __future__ import annotations

from lstm_gradcheck.reference.variants.convention import Convention
from lstm_gradcheck.reference.variants.derivation import Derivation
from lstm_gradcheck.reference.variants.variant import ALL_GATES, ExpectedLocation, Minimal, Variant, longest

__all__ = ["SEED_VARIANTS", "SEED001", "SEED002", "SEED003", "SEED004", "TANH_CELL"]

TANH_CELL = Convention(cell_output=("tanh",), note="h = o·tanh(c): the mistake needs a tanh at the cell output")
SEED001 = Convention(
    cell_output=("identity",),
    loss_at=("every",),
    final_state=(False,),
    note="seed 001: h = o·s (identity cell output), a loss l(t) at every step, no final-state term",
)
SEED002 = Convention(
    cell_output=("tanh",),
    loss=("cross_entropy",),
    loss_at=("every",),
    final_state=(False,),
    note="seed 002: h = o·tanh(C), softmax cross-entropy (δ = ŷ − y) at every step, no final-state term",
)
SEED003 = Convention(
    cell_output=("tanh",),
    loss=("cross_entropy",),
    loss_at=("last",),
    final_state=(False,),
    note="seed 003: TensorFlow BasicLSTMCell, softmax cross-entropy on the last step's h only",
)
SEED004 = Convention(
    cell_output=("tanh",),
    loss=("cross_entropy",),
    loss_at=("every",),
    final_state=(False,),
    note="seed 004: h = o∘tanh(c), softmax cross-entropy L = Σ_t L_t at every step, no final-state term",
)

_S001 = {"cell_output": "identity", "loss": "mse"}
_S003 = {"loss_at": "last"}

SEED_VARIANTS: tuple[Variant, ...] = (
    Variant(
        name="seed000_zero_dc_at_last_step",
        source="seed 000, §3 (the C chain) and §4 (bias): dC = 0 at each layer's last step; db = deltas reduced",
        statement="each layer's backward starts δC at zero at its last step and only δH goes down; "
        "db sums the gate deltas over batch and time (right whenever nothing consumes c_T)",
        expected="fail",
        grads=Derivation(final_dc=False),
        minimal=Minimal(
            "final_state (a decoder consumes c_T), any T ≥ 1, any layer count",
            condition=lambda c, lengths: c.final_state,
            is_minimal=lambda c, lengths: c.final_state and c.seq_len == 1 and c.num_layers == 1,
            example={"final_state": True},
            below=({"final_state": False, "seq_len": 3, "num_layers": 2},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "g", "i"}),
            0,
            "every layer whose c_T is consumed, and every layer below it through the message",
        ),
    ),
    Variant(
        name="seed000_tan_typo_literal",
        source="seed 000, §3.3.2 rendered formula ∂H_t/∂C_t = O_t[1 − tan²(C_t)], read literally",
        statement="tanh'(c) written 1 − tan²(c), the typo of seed 000's one rendered formula taken as code",
        expected="fail",
        grads=Derivation(tan_for_tanh=True, convention=TANH_CELL),
        minimal=Minimal(
            "any tanh-cell case, T ≥ 1",
            condition=lambda c, lengths: True,
            is_minimal=lambda c, lengths: c.seq_len == 1,
            example={},
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "g", "i"}),
            0,
        ),
    ),
    Variant(
        name="seed001_code",
        source="seed 001, its code (nicodjimenez/lstm lstm.py, LstmNode.top_diff_is): "
        "ds = o·top_diff_h + top_diff_s, bottom_diff_s = ds·f",
        statement="h = o·s; δs^t = o^t δh^t + f^{t+1} δs^{t+1}, s as a second state carried back in time",
        expected="pass",
        grads=Derivation(convention=SEED001),
    ),
    Variant(
        name="seed001_text_s_via_h",
        source="seed 001, 'Details': modifying s(t) affects L(t+1) only by modifying h(t+1)",
        statement="δs^t = o^t δh^t + f^{t+1} o^{t+1} δh^{t+1}: the carry keeps only the next step's own "
        "h-path, dropping s(t) → s(t+1) → s(t+2)",
        expected="fail",
        grads=Derivation(one_step_cell_carry=True, convention=SEED001),
        minimal=Minimal(
            "T ≥ 2 (c0 only; with zero initial states: T ≥ 3, where every parameter goes wrong too)",
            condition=lambda c, lengths: longest(c, lengths) >= 2,
            is_minimal=lambda c, lengths: longest(c, lengths) == 2,
            example={**_S001, "seq_len": 2},
            below=({**_S001, "seq_len": 1},),
        ),
        location=ExpectedLocation(
            frozenset({"c0"}), frozenset(), None, "T ≥ 3: every parameter (i, f, g rows), x and h0 too"
        ),
    ),
    Variant(
        name="seed001_text_local_dh_dw",
        source="seed 001, 'Introduction': dL/dw = Σ_t Σ_i dL(t)/dh_i(t) · dh_i(t)/dw, "
        "dh/dw 'from the forward equations'",
        statement="each step's weight gradient is δh^t times the local ∂h^t/∂w, i.e. gate deltas from "
        "δs^t = o^t δh^t only (the path s(t) → s(t+1) that bypasses h(t) is lost)",
        expected="fail",
        grads=Derivation(local_param_deltas=True, convention=SEED001),
        minimal=Minimal(
            "T ≥ 2",
            condition=lambda c, lengths: longest(c, lengths) >= 2,
            is_minimal=lambda c, lengths: longest(c, lengths) == 2,
            example={**_S001, "seq_len": 2},
            below=({**_S001, "seq_len": 1},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"}),
            frozenset({"f", "g", "i"}),
            0,
            "x, h0, c0 stay right (only the parameter sums use the local δs)",
        ),
    ),
    Variant(
        name="seed002_printed_jacobian",
        source="seed 002, §4: ∂h^{t+1}/∂h^t = diag[o(1−o) tanh C]W_o + diag[ΔC⊙f] + diag[ΔC⊙a⊙i]",
        statement="δh^t = Vᵀ(ŷ^t − y^t) + (∂h^{t+1}/∂h^t)ᵀ δh^{t+1} with the printed Jacobian "
        "(no W_f, W_i, W_a, no gate derivatives), δC^t the standard carry",
        expected="fail",
        grads=Derivation(printed_jacobian=True, convention=SEED002),
        minimal=Minimal(
            "T ≥ 1 (h0 only, the same recursion gives ∂L/∂h0; with zero initial states: T ≥ 2, where the "
            "parameters go wrong)",
            condition=lambda c, lengths: True,
            is_minimal=lambda c, lengths: c.seq_len == 1,
            example={"seq_len": 1},
        ),
        location=ExpectedLocation(
            frozenset({"h0"}),
            frozenset(),
            None,
            "T ≥ 2: every parameter; with h0 = c0 = 0 the f rows and W_h stay right at T = 2",
        ),
    ),
    Variant(
        name="seed002_recursion_without_cell_path",
        source="seed 002, §4: δh^t = ∂l(t)/∂h^t + (∂h^{t+1}/∂h^t)ᵀ δh^{t+1}, with the correct Jacobian",
        statement="the δh recursion through h^{t+1} only: the path h^t → C^{t+1} → C^{t+2} that bypasses "
        "h^{t+1} is missing (δz^{t+1} built from δC^{t+1}'s local part)",
        expected="fail",
        grads=Derivation(cell_path_in_dh=False, convention=SEED002),
        minimal=Minimal(
            "T ≥ 2 (h0 only; with zero initial states: T ≥ 3, where the parameters go wrong)",
            condition=lambda c, lengths: longest(c, lengths) >= 2,
            is_minimal=lambda c, lengths: longest(c, lengths) == 2,
            example={"seq_len": 2},
            below=({"seq_len": 1},),
        ),
        location=ExpectedLocation(
            frozenset({"h0"}),
            frozenset(),
            None,
            "T ≥ 3: every parameter; with h0 = c0 = 0 the f rows and W_h stay right at T = 3",
        ),
    ),
    Variant(
        name="seed003_forget_bias_in_both",
        source="seed 003, §2(5): ft = sigmoid(xh·Wf + Bf + forget_bias), as TensorFlow's BasicLSTMCell",
        statement="forget_bias inside the forget sigmoid in the forward, and the same f and σ'(z_f + forget_bias) "
        "in the backward",
        expected="pass",
        grads=Derivation(convention=SEED003),
    ),
    Variant(
        name="seed003_forget_bias_not_in_backward",
        source="seed 003, §2(5): forget_bias added to the forward only (the seed's first attempt, made consistent "
        "with TensorFlow in the forward)",
        statement="the backward recomputes f = σ(z_f) and σ'(z_f) without forget_bias",
        expected="fail",
        grads=Derivation(forget_bias_in_backward=False, convention=SEED003),
        minimal=Minimal(
            "forget_bias ≠ 0, any T ≥ 1 (∂L/∂c0 = f^0 δc^0 takes the wrong f even with c0 = 0;"
            " with zero initial states: T ≥ 2 or c0 ≠ 0, which holds for the parameters)",
            condition=lambda c, lengths: c.forget_bias != 0,
            is_minimal=lambda c, lengths: c.forget_bias != 0 and c.seq_len == 1,
            example={**_S003, "forget_bias": 1.0},
            below=({**_S003, "forget_bias": 0.0, "seq_len": 3},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f"}),
            0,
            "with c0 = 0 at T = 1 only c0 (its f^0 δc^0 uses the wrong f); T ≥ 2 every gate",
        ),
    ),
    Variant(
        name="seed004_eq3_no_recurrent_dh",
        source="seed 004, eq. (3): δh^t = V(ŷ^t − y^t), 'δh 用于当前层的计算，并没有参与反向传播'",
        statement="δh^t takes only the output's gradient: the recurrent term W_hᵀ δz^{t+1} is dropped",
        expected="fail",
        grads=Derivation(recurrent_dh=False, convention=SEED004),
        minimal=Minimal(
            "T ≥ 2",
            condition=lambda c, lengths: longest(c, lengths) >= 2,
            is_minimal=lambda c, lengths: longest(c, lengths) == 2,
            example={"seq_len": 2},
            below=({"seq_len": 1, "num_layers": 2},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            ALL_GATES,
            0,
            "with h0 = c0 = 0 at T = 2 the f rows and W_h stay right; T ≥ 3 every block",
        ),
    ),
    Variant(
        name="seed004_sigma_prime_to_layer_below",
        source="seed 004, §19.5.2: the error to layer l−1 is Σ_gates (δ_gate) W_{·x} ∘ σ'(O_t^{l−1})",
        statement="the message to the layer below is multiplied by σ'(·) = x(1 − x) of the lower layer's h, "
        "as if that layer were a feed-forward sigmoid layer",
        expected="fail",
        grads=Derivation(sigma_prime_to_layer_below=True, convention=SEED004),
        minimal=Minimal(
            "num_layers ≥ 2, any T ≥ 1",
            condition=lambda c, lengths: c.num_layers >= 2,
            is_minimal=lambda c, lengths: c.num_layers == 2 and c.seq_len == 1,
            example={"num_layers": 2},
            below=({"num_layers": 1, "seq_len": 3},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            ALL_GATES,
            0,
            "every layer below the top; the top layer stays right",
        ),
    ),
    Variant(
        name="seed004_code_no_dc_carry",
        source="seed 004, its companion code (microsoft/ai-edu MiniFramework LSTMCell_1_2.backward): "
        "self.dc = in_grad * o * (1 − tanh²(c))",
        statement="δc^t = δh^t o^t tanh'(c^t) with no f^{t+1} δc^{t+1} carry (δh keeps its recurrent term)",
        expected="fail",
        grads=Derivation(cell_carry=False, convention=SEED004),
        minimal=Minimal(
            "T ≥ 2",
            condition=lambda c, lengths: longest(c, lengths) >= 2,
            is_minimal=lambda c, lengths: longest(c, lengths) == 2,
            example={"seq_len": 2},
            below=({"seq_len": 1},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "g", "i"}),
            0,
            "with h0 = c0 = 0 at T = 2 only the i, g rows of W_ih and the biases",
        ),
    ),
)
