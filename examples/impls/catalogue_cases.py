"""How the catalogue describes a case: a dict of config fields plus "lengths", and its simplifications.

Shared by :mod:`catalogue` and the tests; it imports nothing from the project.

Examples are ``lstm-gradcheck report`` case options (a list of argv words);
every case option not given takes the CLI's default (4 inputs, 5 hidden, 2
layers, 3 outputs, 6 steps, batch 3, loss at every step, cross_entropy, mean,
forget_bias 1, tanh, float64, final state on). ``MINIMAL_BASE`` resets every
option to its simplest value, so ``MINIMAL_BASE + [...]`` spells a minimal case.

"A live loss" is any loss but cross_entropy over ``output_size == 1``, which is
identically 0 (one class): with it and no final-state term every gradient is 0,
so no mistake can show.

``config`` may be a mapping (e.g. the report JSON's ``"case"``) or any object
with the config's attributes (e.g. the harness's ``LSTMConfig``); ``lengths``
is ``None`` or a sequence of ints. This module imports nothing from the project.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "HERE",
    "FIELDS",
    "INT_FIELDS",
    "SIMPLEST",
    "CHOICE_ORDER",
    "MINIMAL_BASE",
    "CLI_DEFAULTS",
    "as_case",
    "options_to_case",
    "case_to_options",
    "has_padding",
    "loss_live",
    "any_gradient",
    "scored_pairs",
    "mean_count",
    "simplifications",
    "is_minimal",
    "lstm_tensors",
    "all_tensors",
    "case_lengths",
]

Case = dict[str, Any]  # config fields plus "lengths"

#: This folder: every file named in an entry lives here.
HERE = Path(__file__).resolve().parent

FIELDS = (
    "input_size",
    "hidden_size",
    "num_layers",
    "output_size",
    "seq_len",
    "batch_size",
    "loss_at",
    "loss",
    "reduction",
    "forget_bias",
    "cell_output",
    "dtype",
    "final_state",
)
INT_FIELDS = FIELDS[:6]

#: Choice fields, simplest first (the order Hypothesis's strategies shrink towards).
CHOICE_ORDER: Mapping[str, tuple[Any, ...]] = {
    "loss_at": ("every", "last"),
    "loss": ("cross_entropy", "mse", "bce"),
    "reduction": ("sum", "mean"),
    "cell_output": ("tanh", "identity"),
    "dtype": ("float64", "float32"),
    "final_state": (False, True),
}

#: The simplest case: every size 1, every choice its first option, forget_bias 0, no lengths.
SIMPLEST: Case = {
    **dict.fromkeys(INT_FIELDS, 1),
    **{name: values[0] for name, values in CHOICE_ORDER.items()},
    "forget_bias": 0.0,
    "lengths": None,
}

#: CLI options that set every field to SIMPLEST (the CLI's own defaults are a rich case).
MINIMAL_BASE: list[str] = [
    *(w for name in INT_FIELDS for w in (f"--{name.replace('_', '-')}", "1")),
    "--loss-at", "every", "--loss", "cross_entropy", "--reduction", "sum", "--forget-bias", "0",
    "--cell-output", "tanh", "--dtype", "float64", "--no-final-state",
]  # fmt: skip

#: The CLI's defaults (lstm-gradcheck report with no case option).
CLI_DEFAULTS: Case = {
    "input_size": 4,
    "hidden_size": 5,
    "num_layers": 2,
    "output_size": 3,
    "seq_len": 6,
    "batch_size": 3,
    "loss_at": "every",
    "loss": "cross_entropy",
    "reduction": "mean",
    "forget_bias": 1.0,
    "cell_output": "tanh",
    "dtype": "float64",
    "final_state": True,
    "lengths": None,
}


# ----------------------------------------------------------------------------- case helpers


def as_case(config: Any, lengths: Sequence[int] | None = None) -> Case:
    """A plain dict of the config fields plus ``lengths`` from a mapping or an object.

    A mapping's own ``"lengths"`` is used when ``lengths`` is not given.
    """
    if isinstance(config, Mapping):
        out = {name: config[name] for name in FIELDS}
        if lengths is None:
            lengths = config.get("lengths")
    else:
        out = {name: getattr(config, name) for name in FIELDS}
    out["lengths"] = None if lengths is None else [int(v) for v in lengths]
    return out


def options_to_case(options: Sequence[str]) -> Case:
    """The case (config fields plus lengths) that ``lstm-gradcheck report OPTIONS`` builds.

    Only the options the examples in this module use are understood.
    """
    case = dict(CLI_DEFAULTS)
    words = list(options)
    k = 0
    while k < len(words):
        word = words[k]
        if word == "--no-final-state":
            case["final_state"] = False
            k += 1
            continue
        if word == "--final-state" and (k + 1 == len(words) or words[k + 1].startswith("--")):
            case["final_state"] = True  # the flag's form without a value
            k += 1
            continue
        name = word[2:].replace("-", "_")
        value = words[k + 1]
        k += 2
        if name in INT_FIELDS:
            case[name] = int(value)
        elif name == "forget_bias":
            case[name] = float(value)
        elif name == "final_state":
            case[name] = value.lower() in ("true", "yes", "1", "on")
        elif name == "lengths":
            case[name] = [int(v) for v in value.split(",")]
        elif name in ("seed", "weight_scale"):
            continue
        else:
            case[name] = value
    return case


def case_to_options(case: Mapping[str, Any]) -> list[str]:
    """``lstm-gradcheck report`` options that build ``case`` (every config field, and the lengths if any)."""
    words: list[str] = []
    for name in FIELDS:
        value = case[name]
        if name == "final_state":
            words += ["--final-state", "true" if value else "false"]
        else:
            words += [f"--{name.replace('_', '-')}", str(value)]
    if case.get("lengths") is not None:
        words += ["--lengths", ",".join(str(int(v)) for v in case["lengths"])]
    return words


def case_lengths(case: Case) -> list[int]:
    """Every sequence's length (seq_len when the case has no lengths)."""
    lengths = case["lengths"]
    return [case["seq_len"]] * case["batch_size"] if lengths is None else list(lengths)


def has_padding(case: Case) -> bool:
    """Some sequence is shorter than seq_len."""
    return case["lengths"] is not None and min(case["lengths"]) < case["seq_len"]


def loss_live(case: Case) -> bool:
    """The loss has a nonzero gradient: cross_entropy over one class is identically 0."""
    return not (case["loss"] == "cross_entropy" and case["output_size"] == 1)


def any_gradient(case: Case) -> bool:
    """Some gradient reaches the LSTM: from the loss or from the final-state term."""
    return loss_live(case) or bool(case["final_state"])


def scored_pairs(case: Case) -> int:
    """Number of scored (t, b) pairs: every real step, or one per sequence for loss_at last."""
    return sum(case_lengths(case)) if case["loss_at"] == "every" else case["batch_size"]


def mean_count(case: Case) -> int:
    """torch's divisor of reduction mean: pairs for cross_entropy, (t, b, o) elements for mse/bce."""
    pairs = scored_pairs(case)
    return pairs if case["loss"] == "cross_entropy" else pairs * case["output_size"]


def simplifications(case: Case) -> Iterator[Case]:
    """Every case one simplification away from ``case``, towards :data:`SIMPLEST`.

    Any smaller value of one size (lengths clipped to a smaller seq_len, the
    first B' lengths kept for a smaller batch or one length dropped), any
    earlier option of one choice, forget_bias 0, no lengths, or one length
    made longer (Hypothesis shrinks lengths towards seq_len).
    """
    for name in INT_FIELDS:
        for smaller in range(1, case[name]):
            out = {**case, name: smaller}
            if case["lengths"] is not None and name == "seq_len":
                out["lengths"] = [min(v, smaller) for v in case["lengths"]]
            if case["lengths"] is not None and name == "batch_size":
                out["lengths"] = case["lengths"][:smaller]
                yield out
                if smaller == case[name] - 1:
                    for drop in range(case[name]):
                        yield {**out, "lengths": case["lengths"][:drop] + case["lengths"][drop + 1 :]}
                continue
            yield out
    for name, values in CHOICE_ORDER.items():
        for simpler in values[: values.index(case[name])]:
            yield {**case, name: simpler}
    if case["forget_bias"] != 0:
        yield {**case, "forget_bias": 0.0}
    if case["lengths"] is not None:
        yield {**case, "lengths": None}
        for b, value in enumerate(case["lengths"]):
            for longer in range(value + 1, case["seq_len"] + 1):
                yield {**case, "lengths": [*case["lengths"][:b], longer, *case["lengths"][b + 1 :]]}


def is_minimal(triggers: Callable[[Case, Sequence[int] | None], bool], case_json: Mapping[str, Any]) -> bool:
    """``case_json`` triggers and no single simplification of it does."""
    case = as_case(case_json)
    if not triggers(case, case["lengths"]):
        return False
    return not any(triggers(s, s["lengths"]) for s in simplifications(case))


def lstm_tensors(num_layers: int, layers: Sequence[int] | None = None) -> frozenset[str]:
    """The LSTM parameters of ``layers`` (default all) plus x, h0, c0."""
    names = {"x", "h0", "c0"}
    for k in range(num_layers) if layers is None else layers:
        names |= {f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}"}
    return frozenset(names)


def all_tensors(num_layers: int) -> frozenset[str]:
    """Every gradient name of a model with ``num_layers`` layers."""
    return lstm_tensors(num_layers) | {"head.weight", "head.bias"}
