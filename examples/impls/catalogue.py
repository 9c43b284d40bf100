"""Machine-readable metadata of every implementation in this folder, for the test suite.

Four kinds of entries:

* :data:`BUGS`: ``bug_<mistake>.py``, each the textbook LSTM with one planted
  mistake. ``triggers(config, lengths)`` is True exactly when the harness is
  expected to flag the bug on a generic random case (random nonzero weights,
  biases, x, h0, c0, targets, dh_n, dc_n): the mistake changes the loss or
  some gradient, by more than the dtype's tolerance. ``minimal(case_json)``
  says whether a shrunk case is a minimal trigger: it triggers, and no single
  simplification towards Hypothesis's simplest case does (any smaller size,
  an earlier choice, forget_bias 0, no final state, no lengths or a longer
  length). ``wrong(config, lengths)`` names the tensors the mistake changes
  (the harness flags a nonempty subset: a tiny contribution may stay within
  tolerance), ``loss_wrong`` says whether the loss changes too, and ``gates``
  where the worst element must sit on ``minimal_example``.
* :data:`CORRECT`: implementations that must never be flagged, with
  ``supports(config, lengths)`` (False: the report exits 2, "does not
  support") and the tensors they leave out (reported "not provided").
* :data:`MALFORMED`: implementations whose return value or behaviour breaks
  the contract, with the expected exit status and a message substring, and
  ``fails(config, lengths)`` saying on which cases (``bad_raises.py`` only
  raises for lengths that are not sorted in decreasing order). The chatty
  ``prints_to_stdout.py`` is listed there (exit 0) and among the correct ones.
* :data:`SLIPS`: ``slip_<mistake>.py``, the textbook LSTM with one slip of a kind the
  report's diagnosis names (a forward computing another model, one gate's backward, a
  lower precision), with the diagnosis ``kind`` expected on ``example``, what its sentence
  must say, and the gates it must name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalogue_cases import (
    CHOICE_ORDER,
    FIELDS,
    HERE,
    MINIMAL_BASE,
    SIMPLEST,
    Case,
    all_tensors,
    any_gradient,
    as_case,
    case_lengths,
    case_to_options,
    has_padding,
    is_minimal,
    loss_live,
    lstm_tensors,
    mean_count,
    options_to_case,
    simplifications,
)
from catalogue_malformed import MALFORMED, MalformedEntry

__all__ = [
    "FIELDS",
    "SIMPLEST",
    "CHOICE_ORDER",
    "MINIMAL_BASE",
    "BugEntry",
    "CorrectEntry",
    "MalformedEntry",
    "BUGS",
    "CORRECT",
    "MALFORMED",
    "SlipEntry",
    "SLIPS",
    "as_case",
    "simplifications",
    "is_minimal",
    "lstm_tensors",
    "all_tensors",
    "options_to_case",
    "case_to_options",
]

# ----------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class BugEntry:
    """One deliberately wrong implementation (see the module docstring).

    ``trigger`` and ``minimal_description`` say in words what ``triggers`` and
    ``minimal`` decide; ``minimal_example`` is one minimal case and
    ``trigger_examples``/``clean_examples`` rich cases inside/outside the
    trigger (CLI options).
    """

    mistake: str
    bug: str
    trigger: str
    minimal_description: str
    predicate: Callable[[Case], bool]
    wrong_tensors: Callable[[Case], frozenset[str]]
    loss_changes: bool
    minimal_example: list[str]
    trigger_examples: list[list[str]]
    clean_examples: list[list[str]]
    gates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unit: int | None = None

    @property
    def file(self) -> str:
        return f"bug_{self.mistake}.py"

    @property
    def spec(self) -> str:
        """The ``--impl`` spec (an absolute path, so it works from any directory)."""
        return f"{HERE / self.file}:grads"

    def triggers(self, config: Any, lengths: Sequence[int] | None = None) -> bool:
        """True when the harness must flag this bug on a generic random case of ``config``/``lengths``."""
        return self.predicate(as_case(config, lengths))

    def minimal(self, case_json: Mapping[str, Any]) -> bool:
        """True when ``case_json`` (config fields plus lengths) is a minimal trigger."""
        return is_minimal(self.triggers, case_json)

    def wrong(self, config: Any, lengths: Sequence[int] | None = None) -> frozenset[str]:
        """Tensors the mistake changes on a triggering case (empty if it does not trigger)."""
        case = as_case(config, lengths)
        return self.wrong_tensors(case) if self.predicate(case) else frozenset()

    def loss_wrong(self, config: Any, lengths: Sequence[int] | None = None) -> bool:
        """Whether the loss itself is wrong on ``config``/``lengths``."""
        return self.loss_changes and self.triggers(config, lengths)


def _lstm(case: Case) -> frozenset[str]:
    return lstm_tensors(case["num_layers"])


def _everything(case: Case) -> frozenset[str]:
    return all_tensors(case["num_layers"])


def _below_top(case: Case) -> frozenset[str]:
    return lstm_tensors(case["num_layers"], range(case["num_layers"] - 1))


def _truncation_triggers(case: Case) -> bool:
    if case["seq_len"] < 5:
        return False
    # Something must reach step 3 from step >= 4: the final-state term always does (through padding too);
    # the loss does when some sequence has a real step >= 4 (scored there, or scored later through it).
    return bool(case["final_state"]) or (loss_live(case) and max(case_lengths(case)) >= 5)


BUGS: tuple[BugEntry, ...] = (
    BugEntry(
        mistake="forget_bias_backward",
        bug="The backward recomputes the forget gate as sigmoid(z_f), without forget_bias.",
        trigger="forget_bias != 0 and some gradient reaches the LSTM (a live loss or the final-state term); "
        "seq_len 1 suffices: dz_f at step 0 multiplies c0 != 0",
        minimal_description="forget_bias != 0, one layer, one step, batch 1, and a live loss (cross_entropy with "
        "2 outputs, or mse/bce with 1) or the final-state term",
        predicate=lambda c: c["forget_bias"] != 0 and any_gradient(c),
        wrong_tensors=_lstm,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--forget-bias", "1", "--loss", "mse"],
        trigger_examples=[[], ["--forget-bias", "-5", "--dtype", "float32", "--loss", "bce", "--lengths", "6,1,3"]],
        clean_examples=[["--forget-bias", "0"], ["--forget-bias", "0", "--loss", "mse", "--dtype", "float32"]],
        gates={name: ("f",) for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")},
    ),
    BugEntry(
        mistake="truncated_bptt_k4",
        bug="Truncated BPTT in chunks of 4 steps: dh_next and dc_next are reset to 0 crossing from step 4 to 3.",
        trigger="seq_len >= 5 and something reaches step 3 from a later step: the final-state term, or a live "
        "loss with some length >= 5 (where gradients vanish within 4 steps, e.g. forget_bias -5 in float32, the "
        "lost part can fall below the tolerance)",
        minimal_description="seq_len == 5 (no lengths, or some length 5), one layer, batch 1",
        predicate=_truncation_triggers,
        wrong_tensors=_lstm,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--seq-len", "5", "--loss", "mse"],
        trigger_examples=[[], ["--seq-len", "9", "--lengths", "9,2,5", "--no-final-state", "--loss-at", "last"]],
        clean_examples=[
            ["--seq-len", "4"],
            ["--seq-len", "8", "--lengths", "4,2,3", "--no-final-state", "--loss", "bce"],
        ],
    ),
    BugEntry(
        mistake="layers_wrong_weight",
        bug="The gradient handed to the layer below is dz @ W_hh instead of dz @ W_ih.",
        trigger="num_layers >= 2 and some gradient reaches the top layer (a live loss or the final-state term)",
        minimal_description="num_layers == 2, one step, batch 1",
        predicate=lambda c: c["num_layers"] >= 2 and any_gradient(c),
        wrong_tensors=_below_top,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--num-layers", "2", "--loss", "mse"],
        trigger_examples=[[], ["--num-layers", "3", "--dtype", "float32", "--hidden-size", "2"]],
        clean_examples=[["--num-layers", "1"], ["--num-layers", "1", "--lengths", "6,3,1", "--loss", "mse"]],
    ),
    BugEntry(
        mistake="mean_divides_by_batch",
        bug="reduction mean divides the loss and its gradient by the batch size, not by torch's count.",
        trigger="reduction mean, a live loss, and torch's count (scored pairs for cross_entropy, elements for "
        "mse/bce) != batch_size",
        minimal_description="reduction mean, batch 1, and count 2: two steps of cross_entropy (2 classes) or one "
        "step of mse/bce with 2 outputs",
        predicate=lambda c: c["reduction"] == "mean" and loss_live(c) and mean_count(c) != c["batch_size"],
        wrong_tensors=_everything,
        loss_changes=True,
        minimal_example=[*MINIMAL_BASE, "--reduction", "mean", "--loss", "mse", "--output-size", "2"],
        trigger_examples=[[], ["--loss", "bce", "--loss-at", "last", "--lengths", "6,2,4"]],
        clean_examples=[["--reduction", "sum"], ["--loss-at", "last", "--lengths", "5,6,2"]],
    ),
    BugEntry(
        mistake="mean_head_weight_not_divided",
        bug="reduction mean: head.weight's gradient is never divided by the count.",
        trigger="reduction mean, a live loss and a count >= 2",
        minimal_description="reduction mean, batch 1, count 2 (as for mean_divides_by_batch, or batch 2)",
        predicate=lambda c: c["reduction"] == "mean" and loss_live(c) and mean_count(c) >= 2,
        wrong_tensors=lambda c: frozenset({"head.weight"}),
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--reduction", "mean", "--loss", "mse", "--output-size", "2"],
        trigger_examples=[[], ["--loss-at", "last", "--dtype", "float32"]],
        clean_examples=[["--reduction", "sum"], ["--batch-size", "1", "--loss-at", "last", "--num-layers", "3"]],
    ),
    BugEntry(
        mistake="mean_per_pair",
        bug="reduction mean with mse/bce averages over the scored (t, b) pairs instead of the (t, b, o) elements.",
        trigger="reduction mean, loss mse or bce, output_size >= 2",
        minimal_description="reduction mean, mse, output_size 2, everything else 1",
        predicate=lambda c: c["reduction"] == "mean" and c["loss"] != "cross_entropy" and c["output_size"] >= 2,
        wrong_tensors=_everything,
        loss_changes=True,
        minimal_example=[*MINIMAL_BASE, "--reduction", "mean", "--loss", "mse", "--output-size", "2"],
        trigger_examples=[["--loss", "mse"], ["--loss", "bce", "--lengths", "6,2,4", "--dtype", "float32"]],
        clean_examples=[[], ["--loss", "mse", "--output-size", "1"], ["--loss", "bce", "--reduction", "sum"]],
    ),
    BugEntry(
        mistake="lengths_backward_unmasked",
        bug="The backward treats padding steps as real steps (gate gradients, nonzero dx on padding).",
        trigger="some length < seq_len and final_state (only dh_n, dc_n reach the padding steps)",
        minimal_description="seq_len 2, batch 1, lengths [1], final_state, one layer",
        predicate=lambda c: has_padding(c) and bool(c["final_state"]),
        wrong_tensors=_lstm,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--seq-len", "2", "--lengths", "1", "--final-state"],
        trigger_examples=[["--lengths", "6,2,4"], ["--lengths", "1,1,3", "--loss-at", "last", "--dtype", "float32"]],
        clean_examples=[[], ["--lengths", "6,2,4", "--no-final-state"]],
    ),
    BugEntry(
        mistake="lengths_padding_scored",
        bug="With loss_at every the loss mask ignores lengths: padding steps are scored too.",
        trigger="loss_at every, some length < seq_len, and a live loss (one exception hangs on the targets, not "
        "the config: with reduction mean and cross_entropy, a sequence of length 1 whose padding steps all repeat "
        "its target adds exact copies of its one term, which the mean cancels; chance (1/O)^(T-1) at batch 1)",
        minimal_description="seq_len 2, batch 1, lengths [1], loss_at every, a live loss, one layer",
        predicate=lambda c: c["loss_at"] == "every" and has_padding(c) and loss_live(c),
        wrong_tensors=_everything,
        loss_changes=True,
        minimal_example=[*MINIMAL_BASE, "--seq-len", "2", "--lengths", "1", "--loss", "mse"],
        trigger_examples=[["--lengths", "6,2,4"], ["--lengths", "5,6,6", "--loss", "bce", "--dtype", "float32"]],
        clean_examples=[[], ["--lengths", "6,2,4", "--loss-at", "last"]],
    ),
    BugEntry(
        mistake="last_step_off_by_one",
        bug="loss_at last: the head's gradient enters hs[t_last] instead of hs[t_last + 1], one step early.",
        trigger="loss_at last and a live loss (at seq_len 1 the gradient lands on h0)",
        minimal_description="loss_at last, one step, one layer, batch 1, a live loss",
        predicate=lambda c: c["loss_at"] == "last" and loss_live(c),
        wrong_tensors=_lstm,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--loss-at", "last", "--loss", "mse"],
        trigger_examples=[["--loss-at", "last"], ["--loss-at", "last", "--lengths", "2,6,1", "--loss", "bce"]],
        clean_examples=[[], ["--lengths", "2,6,1", "--loss", "bce", "--num-layers", "3"]],
    ),
    BugEntry(
        mistake="tiny_error_one_element",
        bug="bias_hh_l0's gradient of input-gate unit 0 is off by a relative 1e-5.",
        trigger="float64 and some gradient reaches the LSTM (in float32 1e-5 is within the tolerance 4.8e-5)",
        minimal_description="float64, every size 1, a live loss or the final-state term",
        predicate=lambda c: c["dtype"] == "float64" and any_gradient(c),
        wrong_tensors=lambda c: frozenset({"bias_hh_l0"}),
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--loss", "mse"],
        trigger_examples=[[], ["--num-layers", "1", "--loss", "bce", "--lengths", "3,6,6"]],
        clean_examples=[["--dtype", "float32"], ["--dtype", "float32", "--num-layers", "3", "--loss", "mse"]],
        gates={"bias_hh_l0": ("i",)},
        unit=0,
    ),
    BugEntry(
        mistake="final_state_ignores_dc_n",
        bug="The final-state term's dc_n is ignored: the c-gradient of the last step starts at 0.",
        trigger="final_state",
        minimal_description="final_state, every size 1 (cross_entropy over 1 class is fine: dc_n alone matters)",
        predicate=lambda c: bool(c["final_state"]),
        wrong_tensors=_lstm,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--final-state"],
        trigger_examples=[[], ["--final-state", "--lengths", "2,6,3", "--dtype", "float32", "--loss", "mse"]],
        clean_examples=[["--no-final-state"], ["--no-final-state", "--lengths", "2,6,3", "--loss", "bce"]],
    ),
    BugEntry(
        mistake="mse_missing_factor_2",
        bug="The mse gradient is y - target instead of 2 (y - target).",
        trigger="loss mse",
        minimal_description="loss mse, every size 1",
        predicate=lambda c: c["loss"] == "mse",
        wrong_tensors=_everything,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--loss", "mse"],
        trigger_examples=[["--loss", "mse"], ["--loss", "mse", "--dtype", "float32", "--loss-at", "last"]],
        clean_examples=[[], ["--loss", "bce", "--lengths", "6,1,2"]],
    ),
    BugEntry(
        mistake="bce_double_sigmoid_prime",
        bug="The bce gradient sigmoid(y) - target is multiplied by sigmoid'(y) once more.",
        trigger="loss bce",
        minimal_description="loss bce, every size 1",
        predicate=lambda c: c["loss"] == "bce",
        wrong_tensors=_everything,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--loss", "bce"],
        trigger_examples=[["--loss", "bce"], ["--loss", "bce", "--dtype", "float32", "--reduction", "sum"]],
        clean_examples=[[], ["--loss", "mse", "--lengths", "6,1,2"]],
    ),
    BugEntry(
        mistake="identity_cell_tanh_prime",
        bug="cell_output identity: the backward still multiplies dh * o by tanh'(c).",
        trigger="cell_output identity and some gradient reaches the LSTM",
        minimal_description="cell_output identity, every size 1, a live loss or the final-state term",
        predicate=lambda c: c["cell_output"] == "identity" and any_gradient(c),
        wrong_tensors=_lstm,
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--cell-output", "identity", "--loss", "mse"],
        trigger_examples=[["--cell-output", "identity"], ["--cell-output", "identity", "--dtype", "float32"]],
        clean_examples=[[], ["--cell-output", "tanh", "--loss", "bce", "--lengths", "1,6,2"]],
    ),
    BugEntry(
        mistake="head_bias_batch_mean",
        bug="head.bias's gradient is dy.mean(axis=0) over the batch instead of the sum.",
        trigger="batch_size >= 2 and a live loss",
        minimal_description="batch_size 2, every other size 1, a live loss",
        predicate=lambda c: c["batch_size"] >= 2 and loss_live(c),
        wrong_tensors=lambda c: frozenset({"head.bias"}),
        loss_changes=False,
        minimal_example=[*MINIMAL_BASE, "--batch-size", "2", "--loss", "mse"],
        trigger_examples=[[], ["--batch-size", "2", "--dtype", "float32", "--loss", "bce"]],
        clean_examples=[["--batch-size", "1"], ["--batch-size", "1", "--loss", "mse", "--num-layers", "3"]],
    ),
)

BUGS_BY_MISTAKE: Mapping[str, BugEntry] = {entry.mistake: entry for entry in BUGS}


@dataclass(frozen=True)
class SlipEntry:
    """A slip the report's diagnosis must name: on ``example`` (CLI options) its kind is ``kind``,
    its sentence contains every phrase of ``says``, it names exactly ``gates`` and, for a forward
    slip, says whether the backward is consistent with the forward (``self_consistent``)."""

    mistake: str
    kind: str
    says: tuple[str, ...]
    example: list[str]
    gates: tuple[str, ...] = ()
    self_consistent: bool | None = None

    @property
    def spec(self) -> str:
        return f"{HERE / f'slip_{self.mistake}.py'}:grads"


_SMALL = ["--num-layers", "1", "--seq-len", "3"]

SLIPS: tuple[SlipEntry, ...] = (
    SlipEntry(
        "cell_gate_sigmoid", "forward", ("the forward (or the loss) differs", "backward may be right", "activation"),
        _SMALL, self_consistent=True,
    ),
    SlipEntry(
        "forget_bias_ignored", "forward", ("the contract's with forget_bias 0", "fold_forget_bias=True"),
        [*_SMALL, "--forget-bias", "1.5"], self_consistent=True,
    ),
    SlipEntry(
        "cell_gate_tanh_prime", "backward", ("the forward is right", "only the cell gate (g)", "step 2"),
        _SMALL, gates=("g",),
    ),
    SlipEntry(
        "cell_gate_tanh_prime", "backward", ("only the cell gate (g) of layer 1", "the last step, step 4"),
        ["--num-layers", "2", "--seq-len", "5", "--loss", "mse"], gates=("g",),
    ),
    SlipEntry("float32_gate_buffer", "precision", ("float32 roundoff", "float64 case", "the loss agrees"), _SMALL),
)  # fmt: skip


@dataclass(frozen=True)
class CorrectEntry:
    """An implementation that must pass every case it supports.

    ``supports`` is False where it raises NotImplementedError (``report`` then
    exits 2 with ``unsupported_message`` in its error; ``search`` counts the case
    as tried); ``not_provided`` are the tensors it never returns.
    """

    file: str
    description: str
    supports: Callable[[Case], bool]
    not_provided: frozenset[str] = frozenset()
    supported_examples: list[list[str]] = field(default_factory=list)
    unsupported_examples: list[list[str]] = field(default_factory=list)
    unsupported_message: str = ""
    expected: str = "pass"

    @property
    def spec(self) -> str:
        """The ``--impl`` spec (an absolute path, so it works from any directory)."""
        return f"{HERE / self.file}:grads"

    def supports_case(self, config: Any, lengths: Sequence[int] | None = None) -> bool:
        """False when the implementation raises NotImplementedError (the report then exits 2)."""
        return self.supports(as_case(config, lengths))


_VARIED = [
    [],
    ["--num-layers", "3", "--lengths", "6,1,4", "--loss", "bce", "--forget-bias", "-2.5"],
    ["--cell-output", "identity", "--loss-at", "last", "--loss", "mse", "--reduction", "sum", "--seq-len", "9"],
    ["--num-layers", "1", "--batch-size", "1", "--seq-len", "1", "--no-final-state", "--dtype", "float32"],
]

CORRECT: tuple[CorrectEntry, ...] = (
    CorrectEntry(
        file="ok_textbook.py",
        description="the textbook LSTM without a mistake: every case of the contract",
        supports=lambda c: True,
        supported_examples=_VARIED,
    ),
    CorrectEntry(
        file="ok_float32_only.py",
        description="the textbook LSTM for float32 cases only (NotImplementedError for float64)",
        supports=lambda c: c["dtype"] == "float32",
        supported_examples=[[*ex, "--dtype", "float32"] for ex in _VARIED],
        unsupported_examples=[[], ["--num-layers", "1"]],
        unsupported_message="computes in float32 only",
    ),
    CorrectEntry(
        file="ok_restricted.py",
        description="an independent one-layer cross-entropy LSTM without lengths or final state "
        "(NotImplementedError otherwise)",
        supports=lambda c: (
            c["num_layers"] == 1 and c["lengths"] is None and not c["final_state"] and c["loss"] == "cross_entropy"
        ),
        supported_examples=[
            ["--num-layers", "1", "--no-final-state"],
            ["--num-layers", "1", "--no-final-state", "--loss-at", "last", "--dtype", "float32", "--seq-len", "11"],
            ["--num-layers", "1", "--no-final-state", "--cell-output", "identity", "--reduction", "sum"],
        ],
        unsupported_examples=[[], ["--num-layers", "1", "--no-final-state", "--loss", "mse"]],
        unsupported_message="not supported: ",
    ),
    CorrectEntry(
        file="ok_partial.py",
        description="the textbook LSTM returning only the parameter gradients",
        supports=lambda c: True,
        not_provided=frozenset({"x", "h0", "c0"}),
        supported_examples=_VARIED,
    ),
    CorrectEntry(
        file="prints_to_stdout.py",
        description="the textbook LSTM printing progress with print(): stdout must stay the report's",
        supports=lambda c: True,
        supported_examples=_VARIED[:2],
    ),
)
