"""The frozen configuration of a case and its validation.

Every field is named as in the contract (CONTRACT.md); the CLI's case options
are these names with dashes. Invalid values raise :class:`CaseError`, whose
message names the field, what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CaseError",
    "LSTMConfig",
    "CHOICES",
    "INT_FIELDS",
    "FIELD_HELP",
    "UPSTREAM",
    "RANDOM",
    "ZERO",
    "V1_CHOICES",
    "FAMILY_FIELDS",
    "DTYPES",
    "BFLOAT16",
    "NUMPY_DTYPES",
    "numpy_dtype",
    "dtype_eps",
    "round_to_dtype",
    "estimate_bytes",
    "MEMORY_LIMIT_BYTES",
]

#: The dtypes of a case. bfloat16 (extension) is for torch-native implementations: NumPy has no
#: such type, so a bfloat16 case stores float32 arrays holding bfloat16 values exactly.
BFLOAT16 = "bfloat16"
DTYPES = ("float64", "float32", BFLOAT16)
#: The dtypes NumPy code computes in (the property suite's and a search's default).
NUMPY_DTYPES = ("float64", "float32")
#: The layer-only loss: sum(dh_top * h_top) over the scored steps, no head (CONTRACT.md).
UPSTREAM = "upstream"
#: How the initial states h0 and c0 are drawn.
RANDOM, ZERO = "random", "zero"
#: Every categorical config field and its values, simplest first: the one list the CLI,
#: the strategies and support probing take the choices from.
CHOICES: Mapping[str, tuple[object, ...]] = {
    "loss_at": ("every", "last"),
    "loss": ("cross_entropy", "mse", "bce", UPSTREAM),
    "reduction": ("sum", "mean"),
    "cell_output": ("tanh", "identity"),
    "dtype": DTYPES,
    "final_state": (False, True),
    "h0": (RANDOM, ZERO),
    "c0": (RANDOM, ZERO),
    "peepholes": (False, True),
    "bidirectional": (False, True),
    "coupled": (False, True),
}
#: The settings of the LSTM family (extensions): each is off (False, or proj_size 0) by default,
#: and a case with all of them off is the plain LSTM of contract v1.
FAMILY_FIELDS = ("peepholes", "proj_size", "bidirectional", "coupled")
#: Values added after contract v1: an implementation written for v1 may not know them, so
#: support probing searches them only where the implementation returns a result (CONTRACT.md).
V1_CHOICES: Mapping[str, tuple[object, ...]] = {
    **CHOICES,
    "loss": ("cross_entropy", "mse", "bce"),
    "dtype": NUMPY_DTYPES,
    "peepholes": (False,),
    "bidirectional": (False,),
    "coupled": (False,),
}
INT_FIELDS = ("input_size", "hidden_size", "num_layers", "output_size", "seq_len", "batch_size")
_BOOL_FIELDS = ("final_state", "peepholes", "bidirectional", "coupled")
#: One line per config field: the CLI's help and CONTRACT.md's table say the same.
FIELD_HELP: Mapping[str, str] = {
    "input_size": "I, the features of x",
    "hidden_size": "H, every layer's hidden size",
    "num_layers": "L, stacked layers",
    "output_size": "O, the head's outputs (unused by the loss upstream)",
    "seq_len": "T, steps",
    "batch_size": "B, sequences",
    "loss_at": "score every step or only each sequence's last",
    "loss": "the head's loss, or upstream: the layer-only sum(dh_top * h_top), no head",
    "reduction": "sum the loss terms or average them as torch does",
    "forget_bias": "TensorFlow's constant inside the forget gate's sigmoid",
    "cell_output": "h = o*tanh(c) or h = o*c",
    "dtype": "the implementation's arrays",
    "final_state": "add sum(dh_n * h_n) + sum(dc_n * c_n) to the loss",
    "h0": "the initial hidden state: random or zero",
    "c0": "the initial cell state: random or zero",
    "peepholes": "diagonal peephole weights: w_ci, w_cf on c_{t-1}, w_co on c_t (Gers et al., TensorFlow)",
    "proj_size": "P, torch's LSTMP: h_t = W_hr (o_t * tanh(c_t)) of width P (0: no projection; else 1 <= P < H)",
    "bidirectional": "a reverse direction per layer (torch's _reverse parameters), outputs concatenated",
    "coupled": "CIFG: the input gate is 1 - f_t (its rows of the 4H parameters are unused)",
}

#: Cases whose reference forward/backward would need more than this are refused
#: up front (see :func:`estimate_bytes`); half of this machine's 24 GiB.
MEMORY_LIMIT_BYTES = 12 * 2**30


class CaseError(ValueError):
    """A case or config is invalid; the message names the field and the fix."""

    __module__ = "lstm_gradcheck"  # public under this name


@dataclass(frozen=True)
class LSTMConfig:
    """Sizes and settings of one case (see the contract for each field's meaning).

    Defaults are the built-in case of ``lstm-gradcheck report``: small enough
    for every oracle, rich enough to exercise stacked layers, forget_bias and
    the final-state term.
    """

    input_size: int = 4
    hidden_size: int = 5
    num_layers: int = 2
    output_size: int = 3
    seq_len: int = 6
    batch_size: int = 3
    loss_at: str = "every"
    loss: str = "cross_entropy"
    reduction: str = "mean"
    forget_bias: float = 1.0
    cell_output: str = "tanh"
    dtype: str = "float64"
    final_state: bool = True
    h0: str = RANDOM
    c0: str = RANDOM
    peepholes: bool = False
    proj_size: int = 0
    bidirectional: bool = False
    coupled: bool = False

    def __post_init__(self) -> None:
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise CaseError(f"config.{name}: expected an integer >= 1, got {value!r}")
            if value < 1:
                raise CaseError(f"config.{name}: expected an integer >= 1, got {value}")
            object.__setattr__(self, name, int(value))
        for name, allowed in CHOICES.items():
            if name in _BOOL_FIELDS:
                continue  # a bool, checked below with its own message
            value = getattr(self, name)
            if value not in allowed:
                raise CaseError(f"config.{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        if self.loss == UPSTREAM and self.reduction != "sum":
            raise CaseError(
                f"config.reduction: loss {UPSTREAM!r} is the plain sum(dh_top * h_top) with no terms to average; "
                f"use reduction 'sum', got {self.reduction!r}"
            )
        fb = self.forget_bias
        if isinstance(fb, bool) or not isinstance(fb, (int, float, np.floating, np.integer)):
            raise CaseError(f"config.forget_bias: expected a finite number, got {fb!r}")
        if not math.isfinite(float(fb)):
            raise CaseError(f"config.forget_bias: expected a finite number, got {fb!r}")
        object.__setattr__(self, "forget_bias", float(fb))
        for name in _BOOL_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise CaseError(f"config.{name}: expected True or False, got {value!r}")
            object.__setattr__(self, name, bool(value))
        proj = self.proj_size
        if isinstance(proj, bool) or not isinstance(proj, (int, np.integer)) or proj < 0:
            raise CaseError(f"config.proj_size: expected an integer >= 0 (0: no projection), got {proj!r}")
        if proj and proj >= self.hidden_size:
            raise CaseError(
                f"config.proj_size: a projection must be narrower than the cell, 1 <= proj_size < hidden_size "
                f"= {self.hidden_size} (as torch.nn.LSTM requires), got {proj}; use 0 for no projection"
            )
        object.__setattr__(self, "proj_size", int(proj))

    # Only the public fields, in declaration order (for reports, JSON, CLI).
    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> LSTMConfig:
        unknown = set(changes) - set(self.field_names())
        if unknown:
            raise CaseError(f"config: unknown field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @property
    def np_dtype(self) -> np.dtype:
        return numpy_dtype(self.dtype)

    @property
    def num_directions(self) -> int:
        """D: 2 when bidirectional, else 1. The initial and final states are indexed k * D + d."""
        return 2 if self.bidirectional else 1

    @property
    def h_size(self) -> int:
        """The width of each direction's h: proj_size with a projection, else hidden_size."""
        return self.proj_size or self.hidden_size

    @property
    def top_width(self) -> int:
        """The width of each layer's output (both directions concatenated), D * h_size: what the
        layer above and the head read."""
        return self.num_directions * self.h_size

    @property
    def is_plain(self) -> bool:
        """True when no setting of the LSTM family is on (the LSTM of contract v1)."""
        return not (self.peepholes or self.proj_size or self.bidirectional or self.coupled)

    @property
    def has_head(self) -> bool:
        """False for the layer-only loss ``upstream``: no head.weight, no head.bias."""
        return self.loss != UPSTREAM


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype a case of dtype ``name`` stores its arrays in (float32 for bfloat16)."""
    if name not in DTYPES:
        raise CaseError(f"config.dtype: expected one of {', '.join(map(repr, DTYPES))}, got {name!r}")
    return np.dtype(np.float32) if name == BFLOAT16 else np.dtype(name)


def dtype_eps(name: str) -> float:
    """Machine epsilon of dtype ``name``: 2^-52, 2^-23, and 2^-7 for bfloat16's 8-bit significand."""
    return 2.0**-7 if name == BFLOAT16 else float(np.finfo(numpy_dtype(name)).eps)


def round_to_dtype(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` in the storage of dtype ``name``; for bfloat16, each float32 rounded to the nearest
    bfloat16 (ties to even), as torch's ``.to(torch.bfloat16)`` rounds."""
    out = np.asarray(a).astype(numpy_dtype(name))
    if name != BFLOAT16:
        return out
    bits = out.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).reshape(out.shape)


def estimate_bytes(config: LSTMConfig) -> int:
    """Peak memory of the reference's forward+backward on ``config``, in bytes.

    The cache holds, per layer, the input sequence, 4H gate activations and
    their derivatives, h and c for T+1 steps and tanh(c); the backward adds
    the (T, B, 4H) gate gradients and dx. Oracles hold a few copies more,
    so the harness compares three times this against :data:`MEMORY_LIMIT_BYTES`.
    """
    t, b, h, i, o, n = (
        config.seq_len,
        config.batch_size,
        config.hidden_size,
        config.input_size,
        config.output_size,
        config.num_layers,
    )
    d, w = config.num_directions, config.top_width
    per_layer = d * (t * b * (max(i, w) + 4 * h * 3 + 3 * h + max(i, w)) + 2 * b * h)
    head = 3 * t * b * o
    extra = (3 * h if config.peepholes else 0) + config.proj_size * h  # peepholes, W_hr per direction
    params = n * d * (4 * h * (max(i, w) + h + 2) + extra) + o * (w + 1)
    return int((n * per_layer + head + 2 * params) * config.np_dtype.itemsize)
