"""The catalogue of realistic wrong derivations: one slip each, over the whole contract.

Each entry is ``Derivation(<one switch>)`` (see :mod:`lstm_gradcheck.reference.variants.derivation`)
applied to every case of the contract (or to the cell output its slip needs).
Sources: the seed documents (docs/seeds.md), public code where the slip is
seen, or the rule the slip breaks. Minimal conditions were measured with
random nonzero h0 and c0.
"""

from __future__ import annotations

from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.variants.convention import Convention
from lstm_gradcheck.reference.variants.derivation import Derivation
from lstm_gradcheck.reference.variants.seeds import TANH_CELL
from lstm_gradcheck.reference.variants.variant import (
    ALL_GATES,
    EVERY_TENSOR_ONE_LAYER,
    ExpectedLocation,
    Lengths,
    Minimal,
    Variant,
    longest,
    padded,
)

__all__ = ["CATALOGUE"]

IDENTITY_CELL = Convention(cell_output=("identity",), note="h = o·c: the mix-up needs an identity-cell forward")


def _always(config: LSTMConfig, lengths: Lengths = None) -> bool:
    return True


def _one_step(config: LSTMConfig, lengths: Lengths = None) -> bool:
    return config.seq_len == 1


def _two_steps(config: LSTMConfig, lengths: Lengths = None) -> bool:
    return longest(config, lengths) >= 2


def _exactly_two_steps(config: LSTMConfig, lengths: Lengths = None) -> bool:
    return longest(config, lengths) == 2


def _mean_terms(config: LSTMConfig, lengths: Lengths = None) -> int:
    """The number of terms a "mean" loss divides by (contract: Losses)."""
    scored = (
        (config.seq_len * config.batch_size if lengths is None else int(sum(lengths)))
        if (config.loss_at == "every")
        else config.batch_size
    )
    return scored if config.loss == "cross_entropy" else scored * config.output_size


def _anywhere(description: str, example: dict | None = None) -> Minimal:
    """Wrong on every case (in its convention), already at T = 1."""
    return Minimal(description, condition=_always, is_minimal=_one_step, example=example or {})


def _from_two_steps(example: dict | None = None) -> Minimal:
    base = example or {}
    return Minimal(
        "T ≥ 2",
        condition=_two_steps,
        is_minimal=_exactly_two_steps,
        example={**base, "seq_len": 2},
        below=({**base, "seq_len": 1},),
    )


CATALOGUE: tuple[Variant, ...] = (
    Variant(
        name="cell_tanh_prime_as_one_minus_tanh",
        source="catalogue: tanh'(x) = 1 − tanh²(x) misremembered (as seed 000's rendered tan² formula invites)",
        statement="the cell output's derivative written 1 − tanh(c^t) instead of 1 − tanh²(c^t)",
        expected="fail",
        grads=Derivation(cell_tanh_prime_as_one_minus_tanh=True, convention=TANH_CELL),
        minimal=_anywhere("any tanh-cell case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "g", "i"}),
            0,
        ),
    ),
    Variant(
        name="candidate_tanh_prime_as_one_minus_tanh",
        source="catalogue: tanh'(x) = 1 − tanh²(x) misremembered, on the candidate gate",
        statement="δz_g = δc i (1 − g) instead of δc i (1 − g²)",
        expected="fail",
        grads=Derivation(candidate_tanh_prime_as_one_minus_tanh=True),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}), frozenset({"g"}), 0
        ),
    ),
    Variant(
        name="sigma_prime_as_sigma",
        source="catalogue: σ'(z) written σ(z) (the derivative's own value mistaken for the gate's)",
        statement="δz of the i, f, o gates multiplied by the gate value σ instead of σ(1 − σ)",
        expected="fail",
        grads=Derivation(sigma_prime_as_sigma=True),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "i", "o"}),
            0,
        ),
    ),
    Variant(
        name="sigma_prime_of_preactivation",
        source="catalogue: s(1 − s) applied to the pre-activation z instead of the gate value s",
        statement="δz of the i, f, o gates multiplied by z(1 − z) instead of σ(z)(1 − σ(z))",
        expected="fail",
        grads=Derivation(sigma_prime_of_preactivation=True),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "i", "o"}),
            0,
        ),
    ),
    Variant(
        name="candidate_with_sigma_prime",
        source="catalogue: one vectorized s(1 − s) applied to all 4H gate rows, the tanh candidate included",
        statement="δz_g = δc i g(1 − g), as if the candidate were a sigmoid gate",
        expected="fail",
        grads=Derivation(candidate_with_sigma_prime=True),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}), frozenset({"g"}), 0
        ),
    ),
    Variant(
        name="forget_delta_with_c_t",
        source="catalogue: ∂c^t/∂f^t = c^{t−1} written c^t (off by one step)",
        statement="δz_f = δc^t c^t σ'(z_f) instead of δc^t c^{t−1} σ'(z_f)",
        expected="fail",
        grads=Derivation(dzf_uses_c_prev=False),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}), frozenset({"f"}), 0
        ),
    ),
    Variant(
        name="carry_with_f_t",
        source="catalogue: δc^t = δc^{t+1} f^{t+1} + … written with f^t (off by one step)",
        statement="the cell carry into step t is multiplied by f^t instead of f^{t+1}",
        expected="fail",
        grads=Derivation(carry_f_of_sender=False),
        minimal=_from_two_steps(),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "g", "i"}),
            0,
        ),
    ),
    Variant(
        name="no_recurrent_dh",
        source="catalogue: seed 004 eq. (3)'s slip over the whole contract (tests/test_planted_bug.py plants it)",
        statement="δh^t = l'(t) only, every loss and head; the final state's dh_n still enters at the last step",
        expected="fail",
        grads=Derivation(recurrent_dh=False),
        minimal=_from_two_steps(),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            ALL_GATES,
            0,
        ),
    ),
    Variant(
        name="no_dc_carry",
        source="catalogue: seed 004's companion code's slip over the whole contract",
        statement="δc^t = δh^t o^t cell'(c^t) with no f^{t+1} δc^{t+1}; dc_n still enters at the last step",
        expected="fail",
        grads=Derivation(cell_carry=False),
        minimal=_from_two_steps(),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f", "g", "i"}),
            0,
        ),
    ),
    Variant(
        name="bias_from_one_sample",
        source="catalogue: a per-sample derivation (batch of one) run on a batch",
        statement="db = Σ_t δz^t[batch 0]: the bias gradient of the first sequence only",
        expected="fail",
        grads=Derivation(bias_from_one_sample=True),
        minimal=Minimal(
            "batch_size ≥ 2",
            condition=lambda c, lengths: c.batch_size >= 2,
            is_minimal=lambda c, lengths: c.batch_size == 2,
            example={"batch_size": 2},
            below=({"batch_size": 1, "seq_len": 3},),
        ),
        location=ExpectedLocation(frozenset({"bias_hh_l0", "bias_ih_l0"}), ALL_GATES, 0),
    ),
    Variant(
        name="bias_batch_mean",
        source="catalogue: seed 000's '直接降维' (reduced) read as a mean, wrong by 1/B unless the loss is a "
        "batch mean",
        statement="db = Σ_t mean_b δz^t although δz already carries the loss's own reduction",
        expected="fail",
        grads=Derivation(bias_batch_mean=True),
        minimal=Minimal(
            "batch_size ≥ 2 (error exactly 1 − 1/B), either reduction",
            condition=lambda c, lengths: c.batch_size >= 2,
            is_minimal=lambda c, lengths: c.batch_size == 2,
            example={"batch_size": 2},
            below=({"batch_size": 1, "seq_len": 3, "reduction": "mean"},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0"}),
            ALL_GATES,
            0,
            "the biases scaled by exactly 1/B",
        ),
    ),
    Variant(
        name="bias_without_time_sum",
        source="catalogue: seed 000's bias 'reduced' over the batch axis only",
        statement="db = Σ_b δz^{T−1}: the last step's bias contribution only, no sum over time",
        expected="fail",
        grads=Derivation(bias_time_sum=False),
        minimal=Minimal(
            "T ≥ 2 (the array's last step T − 1, so a batch padded there fails even if every sequence has one step)",
            condition=lambda c, lengths: c.seq_len >= 2,
            is_minimal=lambda c, lengths: c.seq_len == 2,
            example={"seq_len": 2},
            below=({"seq_len": 1, "batch_size": 2},),
        ),
        location=ExpectedLocation(frozenset({"bias_hh_l0", "bias_ih_l0"}), ALL_GATES, 0),
    ),
    Variant(
        name="bias_split_between_ih_hh",
        source="catalogue: torch's two biases taken as halves of one (b = b_ih + b_hh, so each gets db / 2)",
        statement="db_ih = db_hh = db / 2 instead of db each",
        expected="fail",
        grads=Derivation(bias_split_half=True),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(frozenset({"bias_hh_l0", "bias_ih_l0"}), ALL_GATES, 0, "the biases exactly halved"),
    ),
    Variant(
        name="gate_blocks_swapped",
        source="catalogue: gate deltas stacked in the f, i, g, o order of seed 004's code "
        "(ai-edu LSTMCell_1_2.merge_params) against torch's i, f, g, o weights",
        statement="the δz blocks of the input and forget gates are swapped in the backward",
        expected="fail",
        grads=Derivation(swap_if_deltas=True),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}), frozenset({"f", "i"}), 0
        ),
    ),
    Variant(
        name="dw_hh_with_h_t",
        source="catalogue: dW_hh's outer product with the step's own output (off by one step)",
        statement="dW_hh = Σ_t δz^t (h^t)ᵀ instead of Σ_t δz^t (h^{t−1})ᵀ",
        expected="fail",
        grads=Derivation(dw_hh_uses_h_t=True),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(frozenset({"weight_hh_l0"}), ALL_GATES, 0),
    ),
    Variant(
        name="truncated_bptt_2",
        source="catalogue: truncated BPTT (Williams & Peng 1990) with the state detached every 2 steps, "
        "reported as the exact gradient",
        statement="δh and δc are cut where the state enters steps 2, 4, …",
        expected="fail",
        grads=Derivation(bptt_window=2),
        minimal=Minimal(
            "T ≥ 3",
            condition=lambda c, lengths: longest(c, lengths) >= 3,
            is_minimal=lambda c, lengths: longest(c, lengths) == 3,
            example={"seq_len": 3},
            below=({"seq_len": 2, "final_state": True},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            ALL_GATES,
            1,
            "the cut between steps 1 and 2; steps ≥ 2 stay right",
        ),
    ),
    Variant(
        name="mse_delta_without_factor_2",
        source="catalogue: seeds 002 and 004's ŷ − y head, the softmax/CE δ used under the contract's MSE (no 1/2)",
        statement="δy = ŷ − y under the MSE head, whose derivative is 2(ŷ − y)",
        expected="fail",
        grads=Derivation(mse_delta_without_2=True),
        minimal=Minimal(
            "loss = mse, any T ≥ 1",
            condition=lambda c, lengths: c.loss == "mse",
            is_minimal=lambda c, lengths: c.loss == "mse" and c.seq_len == 1,
            example={"loss": "mse"},
            below=({"loss": "bce", "seq_len": 2}, {"loss": "cross_entropy", "seq_len": 2}),
            via_head=True,
        ),
        location=ExpectedLocation(
            EVERY_TENSOR_ONE_LAYER,
            ALL_GATES,
            0,
            "everything below the head is exactly half the right gradient",
        ),
    ),
    Variant(
        name="mean_divided_by_batch",
        source="catalogue: a 'mean' loss divided by the batch size; torch averages over every scored term",
        statement="under reduction = mean, δy divided by B instead of the number of terms",
        expected="fail",
        grads=Derivation(mean_over_batch_only=True),
        minimal=Minimal(
            "reduction = mean with more terms than sequences (T ≥ 2 at every step, or O ≥ 2 under mse/bce)",
            condition=lambda c, lengths: c.reduction == "mean" and _mean_terms(c, lengths) != c.batch_size,
            is_minimal=lambda c, lengths: c.reduction == "mean" and _mean_terms(c, lengths) == 2 * c.batch_size,
            example={"reduction": "mean", "seq_len": 2},
            below=({"reduction": "mean", "seq_len": 1, "batch_size": 2}, {"reduction": "sum", "seq_len": 2}),
            via_head=True,
        ),
        location=ExpectedLocation(
            EVERY_TENSOR_ONE_LAYER,
            ALL_GATES,
            1,
            "every gradient scaled by terms / B",
        ),
    ),
    Variant(
        name="forget_bias_not_in_backward",
        source="seed 003's forget_bias slip over the whole contract (TensorFlow BasicLSTMCell's forget_bias)",
        statement="the backward recomputes f and σ'(z_f) without forget_bias, every loss and placement",
        expected="fail",
        grads=Derivation(forget_bias_in_backward=False),
        minimal=Minimal(
            "forget_bias ≠ 0, any T ≥ 1 (∂L/∂c0 = f^0 δc^0 takes the wrong f even with c0 = 0;"
            " with zero initial states: T ≥ 2 or c0 ≠ 0, which holds for the parameters)",
            condition=lambda c, lengths: c.forget_bias != 0,
            is_minimal=lambda c, lengths: c.forget_bias != 0 and c.seq_len == 1,
            example={"forget_bias": 1.0},
            below=({"forget_bias": 0.0, "seq_len": 3},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            frozenset({"f"}),
            0,
        ),
    ),
    Variant(
        name="padding_steps_scored",
        source="catalogue: padded batch scored without the length mask (torch packed-sequence semantics)",
        statement="the head's δ ignores lengths: padding steps (copies of the last valid state) are scored",
        expected="fail",
        grads=Derivation(score_padding=True),
        minimal=Minimal(
            "lengths with a sequence shorter than T, loss_at = every",
            condition=lambda c, lengths: padded(c, lengths) and c.loss_at == "every",
            is_minimal=lambda c, lengths: padded(c, lengths) and c.seq_len == 2,
            example={"seq_len": 2, "batch_size": 2, "lengths": [2, 1]},
            below=({"seq_len": 2, "batch_size": 2, "lengths": [2, 1], "loss_at": "last"},),
            via_head=True,
        ),
        location=ExpectedLocation(
            EVERY_TENSOR_ONE_LAYER,
            ALL_GATES,
            0,
        ),
    ),
    Variant(
        name="padding_zeroes_state_gradient",
        source="catalogue: the length mask applied to δh and δc at padding steps (as to the outputs)",
        statement="a padding step zeroes δh and δc instead of passing them through to the last valid step",
        expected="fail",
        grads=Derivation(padding_passes_gradient=False),
        minimal=Minimal(
            "lengths with a sequence shorter than T and final_state (dh_n, dc_n must cross the padding)",
            condition=lambda c, lengths: padded(c, lengths) and c.final_state,
            is_minimal=lambda c, lengths: padded(c, lengths) and c.final_state and c.seq_len == 2,
            example={"seq_len": 2, "batch_size": 2, "lengths": [2, 1], "final_state": True},
            below=({"seq_len": 2, "batch_size": 2, "lengths": [2, 1]}, {"seq_len": 2, "final_state": True}),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            ALL_GATES,
            0,
        ),
    ),
    Variant(
        name="mean_counts_padding",
        source="catalogue: a 'mean' over T·B terms in a padded batch; torch averages over valid terms",
        statement="under reduction = mean with lengths, δy divided by T·B(·O) including padding steps",
        expected="fail",
        grads=Derivation(mean_counts_padding=True),
        minimal=Minimal(
            "lengths with a sequence shorter than T, loss_at = every, reduction = mean",
            condition=lambda c, lengths: padded(c, lengths) and c.loss_at == "every" and c.reduction == "mean",
            is_minimal=lambda c, lengths: padded(c, lengths) and c.reduction == "mean" and c.seq_len == 2,
            example={"seq_len": 2, "batch_size": 2, "lengths": [2, 1], "reduction": "mean"},
            below=({"seq_len": 2, "batch_size": 2, "lengths": [2, 1], "reduction": "sum"},),
            via_head=True,
        ),
        location=ExpectedLocation(
            EVERY_TENSOR_ONE_LAYER,
            ALL_GATES,
            1,
            "every gradient scaled by valid terms / (T·B)",
        ),
    ),
    Variant(
        name="final_state_gradient_dropped",
        source="catalogue: an encoder's backward that starts from zero although a decoder consumes (h_n, c_n)",
        statement="dh_n and dc_n never enter: δh and δc start at zero at the last step",
        expected="fail",
        grads=Derivation(final_dh=False, final_dc=False),
        minimal=Minimal(
            "final_state, any T ≥ 1",
            condition=lambda c, lengths: c.final_state,
            is_minimal=lambda c, lengths: c.final_state and c.seq_len == 1,
            example={"final_state": True},
            below=({"final_state": False, "seq_len": 2},),
        ),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            ALL_GATES,
            0,
        ),
    ),
    Variant(
        name="dx_without_output_gate",
        source="catalogue: the input gradient summed over three gate paths (the output gate's forgotten)",
        statement="du^t = Σ_{g ∈ i, f, g} W_xgᵀ δz_g^t: the output gate's path to the input is missing",
        expected="fail",
        grads=Derivation(dx_gates=("i", "f", "g")),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(frozenset({"x"}), frozenset(), None),
    ),
    Variant(
        name="c0_grad_without_forget_gate",
        source="catalogue: ∂L/∂c0 taken as δc^0, the gradient of the first step's cell state",
        statement="∂L/∂c0 = δc^0 instead of f^0 δc^0",
        expected="fail",
        grads=Derivation(c0_through_forget_gate=False),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(frozenset({"c0"}), frozenset(), None),
    ),
    Variant(
        name="h0_grad_without_forget_path",
        source="catalogue: ∂L/∂h0 derived assuming c0 = 0 (then δz_f^0 = δc c0 σ' = 0 and its path vanishes)",
        statement="∂L/∂h0 = Σ_{g ≠ f} W_hgᵀ δz_g^0: the forget gate's path is dropped",
        expected="fail",
        grads=Derivation(h0_forget_path=False),
        minimal=Minimal(
            "c0 ≠ 0 (every random case), T ≥ 1",
            condition=_always,
            is_minimal=_one_step,
            example={},
            below=({"zero": ("c0",), "seq_len": 2},),
        ),
        location=ExpectedLocation(frozenset({"h0"}), frozenset(), None),
    ),
    Variant(
        name="h0_grad_is_first_output_grad",
        source="catalogue: ∂L/∂h0 taken as δh^0, the gradient of the first step's output (off by one step)",
        statement="∂L/∂h0 = δh^0 instead of W_hᵀ δz^0",
        expected="fail",
        grads=Derivation(h0_from_recurrence=False),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(frozenset({"h0"}), frozenset(), None),
    ),
    Variant(
        name="tanh_backward_on_identity_forward",
        source="catalogue: seed 001's h = o·s against the others' h = o·tanh(c): that backward on an h = o·c model",
        statement="on an identity-cell forward the backward uses tanh(c) in δz_o and tanh'(c) in δc",
        expected="fail",
        grads=Derivation(tanh_backward_on_identity=True, convention=IDENTITY_CELL),
        minimal=_anywhere("cell_output = identity, any T ≥ 1", {"cell_output": "identity"}),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "c0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}),
            ALL_GATES,
            0,
        ),
    ),
    Variant(
        name="output_delta_from_dc",
        source="catalogue: the output gate's delta taken from δc (the cell's total gradient) instead of δh",
        statement="δz_o = δc^t cell(c^t) σ'(z_o) instead of δh^t cell(c^t) σ'(z_o)",
        expected="fail",
        grads=Derivation(dzo_from_dh=False),
        minimal=_anywhere("any case, T ≥ 1"),
        location=ExpectedLocation(
            frozenset({"bias_hh_l0", "bias_ih_l0", "h0", "weight_hh_l0", "weight_ih_l0", "x"}), frozenset({"o"}), 0
        ),
    ),
)
