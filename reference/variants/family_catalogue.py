"""Derivations of the LSTM family: the published ones with peepholes, the CIFG form, and realistic slips.

Each is a :class:`~lstm_gradcheck.reference.variants.family.FamilyDerivation`; a wrong one flips
one switch, which matters only where its setting is on (a peephole slip on a case without
peepholes is the right derivation). Minimal conditions and locations were measured with the
harness's random nonzero cases (tests/test_variants_family.py re-checks each).
"""

from __future__ import annotations

from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import gradient_names
from lstm_gradcheck.reference.variants.convention import Convention
from lstm_gradcheck.reference.variants.family import FamilyDerivation
from lstm_gradcheck.reference.variants.forms import SEPARATE
from lstm_gradcheck.reference.variants.variant import ALL_GATES, ExpectedLocation, Lengths, Minimal, Variant, longest

__all__ = ["FAMILY_VARIANTS", "GRAVES", "GREFF", "CIFG"]

GRAVES = Convention(
    cell_output=("tanh",),
    peepholes=(True,),
    projection=(False,),
    coupled=(False,),
    note="Graves' LSTM: peepholes, h = o·tanh(c), one or two directions (his BLSTM)",
)
GREFF = Convention(
    cell_output=("tanh",),
    peepholes=(True,),
    projection=(False,),
    bidirectional=(False,),
    coupled=(False,),
    note="Greff et al.'s vanilla LSTM: peepholes, h = o·tanh(c), one direction",
)
CIFG = Convention(coupled=(True,), note="coupled input and forget gates: i = 1 − f")

_LAYER0 = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_STATES = ("x", "h0", "c0")


def _tensors(*names: str) -> frozenset[str]:
    return frozenset(names)


def _on(**settings: object):
    """The condition "every one of ``settings`` is on" (proj_size: > 0), any T."""

    def condition(config: LSTMConfig, lengths: Lengths = None) -> bool:
        for name, value in settings.items():
            got = config.proj_size > 0 if name == "proj_size" else getattr(config, name)
            if got != value:
                return False
        return True

    return condition


def _minimal(description: str, example: dict, below: tuple[dict, ...] = (), *, steps: int = 1, **settings) -> Minimal:
    """Wrong wherever ``settings`` hold and the longest sequence has at least ``steps`` steps; a smallest
    trigger has exactly that many."""
    on = _on(**settings)

    def condition(config: LSTMConfig, lengths: Lengths = None) -> bool:
        return on(config, lengths) and longest(config, lengths) >= steps

    def is_minimal(config: LSTMConfig, lengths: Lengths = None) -> bool:
        return condition(config, lengths) and config.seq_len == steps

    return Minimal(description, condition, is_minimal, example, below)


def _peephole_not_cifg(description: str, example: dict, below: tuple[dict, ...]) -> Minimal:
    on = _on(peepholes=True)
    return Minimal(
        description,
        condition=lambda c, lengths: on(c, lengths) and not c.coupled,
        is_minimal=lambda c, lengths: on(c, lengths) and not c.coupled and c.seq_len == 1,
        example=example,
        below=below,
    )


def _layers_and_directions(config: LSTMConfig, lengths: Lengths = None) -> bool:
    return config.bidirectional and config.num_layers >= 2


_EVERY_PEEPHOLE_TENSOR = frozenset(
    {*gradient_names(1), "weight_ci_l0", "weight_cf_l0", "weight_co_l0"} - {"head.weight", "head.bias"}
)

FAMILY_VARIANTS: tuple[Variant, ...] = (
    Variant(
        name="graves_thesis_peepholes",
        source="Graves' thesis (Supervised Sequence Labelling with Recurrent Neural Networks), the LSTM "
        "equations with peepholes, forward and backward pass, and its bidirectional LSTM",
        statement="ε_s^t = b_ω h'(s^t) ε_c^t + b_φ^{t+1} ε_s^{t+1} + w_cι δ_ι^{t+1} + w_cφ δ_φ^{t+1} + w_cω δ_ω^t; "
        "δ_ι = f'(a_ι) g(a_c) ε_s, δ_φ = f'(a_φ) s^{t−1} ε_s, δ_ω = f'(a_ω) h(s^t) ε_c",
        expected="pass",
        grads=FamilyDerivation(convention=GRAVES),
    ),
    Variant(
        name="greff_odyssey_full_bptt",
        source="Greff et al., LSTM: A Search Space Odyssey, the appendix's vanilla LSTM with full BPTT: "
        "per-gate W_*, R_*, peepholes p_i, p_f, p_o",
        statement="δc^t = δy^t ⊙ o^t ⊙ h'(c^t) + p_o ⊙ δō^t + p_i ⊙ δī^{t+1} + p_f ⊙ δf̄^{t+1} + δc^{t+1} ⊙ f^{t+1}; "
        "δp_i = Σ c^{t−1} ⊙ δī^t, δp_f = Σ c^{t−1} ⊙ δf̄^t, δp_o = Σ c^t ⊙ δō^t",
        expected="pass",
        grads=FamilyDerivation(form=SEPARATE, convention=GREFF),
    ),
    Variant(
        name="cifg_coupled_gates",
        source="the coupled input-forget gate (CIFG) of Greff et al., with the input gate derived from the "
        "forget gate as in TensorFlow's CoupledInputForgetGateLSTMCell",
        statement="i = 1 − f, so ∂c/∂f̄ = (c^{t−1} − g) σ'(f̄) and the input gate's own rows get no gradient",
        expected="pass",
        grads=FamilyDerivation(convention=CIFG),
    ),
    Variant(
        name="input_peephole_with_c_t",
        source="catalogue: the input gate's peephole gradient taken on the new cell, as the output gate's is",
        statement="δp_i = Σ_t c^t ⊙ δī^t instead of Σ_t c^{t−1} ⊙ δī^t",
        expected="fail",
        grads=FamilyDerivation(input_peephole_uses_c_prev=False),
        minimal=_peephole_not_cifg(
            "peepholes, no coupled gates (their δī is 0), any T ≥ 1",
            {"peepholes": True},
            ({"peepholes": True, "coupled": True, "seq_len": 2},),
        ),
        location=ExpectedLocation(_tensors("weight_ci_l0"), frozenset({"i"}), 0),
    ),
    Variant(
        name="output_peephole_with_c_prev",
        source="catalogue: the output gate's peephole gradient taken on the previous cell, as the input gate's is",
        statement="δp_o = Σ_t c^{t−1} ⊙ δō^t instead of Σ_t c^t ⊙ δō^t",
        expected="fail",
        grads=FamilyDerivation(output_peephole_uses_c_t=False),
        minimal=_minimal("peepholes, any T ≥ 1", {"peepholes": True}, ({"seq_len": 2},), peepholes=True),
        location=ExpectedLocation(_tensors("weight_co_l0"), frozenset({"o"}), 0),
    ),
    Variant(
        name="peephole_carry_dropped",
        source="catalogue: the cell's gradient without the peephole paths into the next step's input and "
        "forget gates (c^t feeds ī^{t+1} and f̄^{t+1})",
        statement="δc^t = δy o h'(c) + p_o δō^t + δc^{t+1} f^{t+1}, without p_i δī^{t+1} + p_f δf̄^{t+1}",
        expected="fail",
        grads=FamilyDerivation(peephole_carry=False),
        minimal=_minimal(
            "peepholes, any T ≥ 1 (c0 feeds step 0's input and forget gates; from T = 2 every tensor)",
            {"peepholes": True},
            ({"seq_len": 2},),
            peepholes=True,
        ),
        location=ExpectedLocation(_tensors("c0"), frozenset(), None, "from T = 2 every tensor but the head's"),
    ),
    Variant(
        name="output_peephole_missing_in_dc",
        source="catalogue: the cell's gradient without the output gate's peephole on the same step",
        statement="δc^t without p_o ⊙ δō^t (the output gate reads c^t itself)",
        expected="fail",
        grads=FamilyDerivation(output_peephole_in_dc=False),
        minimal=_minimal("peepholes, any T ≥ 1", {"peepholes": True}, ({"seq_len": 2},), peepholes=True),
        location=ExpectedLocation(_EVERY_PEEPHOLE_TENSOR - {"weight_co_l0"}, frozenset({"f", "g", "i"}), 0),
    ),
    Variant(
        name="projection_grad_without_output_gate",
        source="catalogue: the LSTMP projection's gradient on the cell output h(c) without the output gate",
        statement="δW_hr = Σ_t δy^t tanh(c^t)ᵀ instead of Σ_t δy^t (o^t ⊙ tanh(c^t))ᵀ",
        expected="fail",
        grads=FamilyDerivation(projection_grad_with_o=False),
        minimal=_minimal("a projection, any T ≥ 1", {"proj_size": 2}, ({"seq_len": 2},), proj_size=True),
        location=ExpectedLocation(_tensors("weight_hr_l0"), frozenset(), 0),
    ),
    Variant(
        name="projection_grad_previous_step",
        source="catalogue: the LSTMP projection's gradient on the previous step's cell output (off by one step)",
        statement="δW_hr = Σ_t δy^t m^{t−1}ᵀ instead of Σ_t δy^t m^tᵀ",
        expected="fail",
        grads=FamilyDerivation(projection_grad_same_step=False),
        minimal=_minimal("a projection, any T ≥ 1", {"proj_size": 2}, ({"seq_len": 2},), proj_size=True),
        location=ExpectedLocation(_tensors("weight_hr_l0"), frozenset(), 0),
    ),
    Variant(
        name="reverse_recurrent_weight_off_by_one",
        source="catalogue: the reverse direction's δR written as the forward one's, with the state at time t − 1",
        statement="δR_reverse = Σ_t δz̄^t h^{t−1}ᵀ (time order) instead of Σ_t δz̄^t h^{t+1}ᵀ, the state it came from",
        expected="fail",
        grads=FamilyDerivation(reverse_recurrence_in_its_order=False),
        minimal=_minimal(
            "bidirectional, T ≥ 2",
            {"bidirectional": True, "seq_len": 2},
            ({"bidirectional": True},),
            steps=2,
            bidirectional=True,
        ),
        location=ExpectedLocation(_tensors("weight_hh_l0_reverse"), ALL_GATES, 0),
    ),
    Variant(
        name="reverse_final_state_at_last_step",
        source="catalogue: the reverse direction's final-state gradient entered where the forward one's is, "
        "at the last time step (its final state is after step 0)",
        statement="dh_n, dc_n of the reverse direction enter at t = T − 1 instead of after t = 0",
        expected="fail",
        grads=FamilyDerivation(reverse_final_state_at_step_0=False),
        minimal=_minimal(
            "bidirectional with the final-state term, T ≥ 2",
            {"bidirectional": True, "final_state": True, "seq_len": 2},
            ({"bidirectional": True, "final_state": True}, {"bidirectional": True, "seq_len": 2}),
            steps=2,
            bidirectional=True,
            final_state=True,
        ),
        location=ExpectedLocation(frozenset({*(n + "_reverse" for n in _LAYER0), *_STATES}), ALL_GATES, 0),
    ),
    Variant(
        name="states_indexed_direction_major",
        source="catalogue: h0 and h_n read direction-major (d·L + k, as some libraries store them) against "
        "torch's layer-major k·D + d",
        statement="the backward takes dh_n, dc_n and puts dh0, dc0 at index d·L + k instead of k·D + d",
        expected="fail",
        grads=FamilyDerivation(state_index_layer_major=False),
        minimal=Minimal(
            "bidirectional with 2 or more layers, any T ≥ 1",
            condition=_layers_and_directions,
            is_minimal=lambda c, lengths: _layers_and_directions(c) and c.num_layers == 2 and c.seq_len == 1,
            example={"bidirectional": True, "num_layers": 2},
            below=({"bidirectional": True, "final_state": True, "seq_len": 2}, {"num_layers": 2}),
        ),
        location=ExpectedLocation(_tensors("h0", "c0"), frozenset(), None),
    ),
    Variant(
        name="direction_halves_swapped",
        source="catalogue: the layer's output gradient split [reverse, forward] against outputs concatenated "
        "[forward, reverse]",
        statement="the forward direction gets Δ[..., P:] and the reverse one Δ[..., :P]",
        expected="fail",
        grads=FamilyDerivation(halves_in_order=False),
        minimal=Minimal(
            "bidirectional, any T ≥ 1",
            condition=_on(bidirectional=True),
            is_minimal=lambda c, lengths: c.bidirectional and c.seq_len == 1,
            example={"bidirectional": True},
            below=({"seq_len": 2},),
            via_head=True,
        ),
        location=ExpectedLocation(frozenset({*_LAYER0, *(n + "_reverse" for n in _LAYER0), *_STATES}), ALL_GATES, 0),
    ),
    Variant(
        name="reverse_gradient_not_reversed",
        source="catalogue: inputs reversed for the reverse direction's forward pass, but its output gradient "
        "(and the input gradient it returns) left in time order in the backward",
        statement="the reverse direction's backward takes Δ^t at its step t instead of Δ at time l − 1 − t",
        expected="fail",
        grads=FamilyDerivation(reverse_gradient_reordered=False),
        minimal=Minimal(
            "bidirectional, a sequence of T ≥ 2 steps",
            condition=lambda c, lengths: c.bidirectional and longest(c, lengths) >= 2,
            is_minimal=lambda c, lengths: c.bidirectional and c.seq_len == 2,
            example={"bidirectional": True, "seq_len": 2},
            below=({"bidirectional": True},),
            via_head=True,
        ),
        location=ExpectedLocation(frozenset({*(n + "_reverse" for n in _LAYER0), *_STATES}), ALL_GATES, 0),
    ),
    Variant(
        name="cifg_forget_without_input_path",
        source="catalogue: a CIFG backward that differentiates f as if i were its own gate",
        statement="δf̄ = δc ⊙ c^{t−1} ⊙ σ'(f̄) instead of δc ⊙ (c^{t−1} − g) ⊙ σ'(f̄), with i = 1 − f",
        expected="fail",
        grads=FamilyDerivation(cifg_forget_has_input_path=False),
        minimal=_minimal("coupled gates, any T ≥ 1", {"coupled": True}, ({"seq_len": 2},), coupled=True),
        location=ExpectedLocation(frozenset({*_LAYER0, "x", "h0"}), frozenset({"f"}), 0),
    ),
    Variant(
        name="cifg_input_rows_get_gradient",
        source="catalogue: a CIFG backward that still gives the (unused) input-gate rows their usual gradient",
        statement="δī = δc ⊙ g ⊙ σ'(ī) although i = 1 − f: the i rows of W, R, b and the paths through them",
        expected="fail",
        grads=FamilyDerivation(cifg_input_rows_unused=False),
        minimal=_minimal("coupled gates, any T ≥ 1", {"coupled": True}, ({"seq_len": 2},), coupled=True),
        location=ExpectedLocation(frozenset({*_LAYER0, "x", "h0"}), frozenset({"i"}), 0),
    ),
)
