"""Other storage layouts of the same LSTM parameters, and the conversions to and from the contract's.

Note [Layout converters]
------------------------
Every conversion between another storage of one layer's parameters and the
contract's (torch's) lives here, so no other module re-derives block or
column arithmetic. Weight maps are permutations, so the same map converts
gradients; a fused bias b = b_ih + b_hh is a sum, whose adjoint hands b's
gradient to both b_ih and b_hh (:func:`split_fused_bias_grad`).

The functions below serve the derivation variants' forms; :class:`Layout`
describes a user's storage in one object for adapters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lstm_gradcheck.reference.layout import (
    GATES,
    bias_hh,
    bias_ih,
    deinterleave,
    gate_blocks,
    gate_slice,
    interleave,
    stack_gates,
    weight_cf,
    weight_ci,
    weight_co,
    weight_hh,
    weight_hr,
    weight_ih,
)

if TYPE_CHECKING:
    from lstm_gradcheck.reference.case import Case
    from lstm_gradcheck.reference.config import LSTMConfig

CONCAT_ORDERS: tuple[str, ...] = ("xh", "hx")
#: TensorFlow's i, j, f, o in our gate letters (j is the candidate, g here).
TF_GATE_ORDER: tuple[str, ...] = ("i", "g", "f", "o")

__all__ = [
    "CONCAT_ORDERS",
    "TF_GATE_ORDER",
    "gate_blocks_in",
    "stack_gates_in",
    "SeparateGates",
    "to_separate",
    "from_separate",
    "concat_inputs",
    "split_concat_inputs",
    "to_concat",
    "from_concat",
    "fuse_biases",
    "split_fused_bias_grad",
    "to_tf_ijfo",
    "from_tf_ijfo",
]


def _check_order(order: tuple[str, ...]) -> None:
    if sorted(order) != sorted(GATES) or len(order) != len(GATES):
        raise ValueError(f"a gate order must list each of {', '.join(GATES)} once, got {order!r}")


def gate_blocks_in(a: np.ndarray, hidden_size: int, order: tuple[str, ...], axis: int = 0) -> dict[str, np.ndarray]:
    """Views of the gate blocks of ``a``, whose ``axis`` (length 4H) stacks them in ``order``.

    ``gate_blocks_in(a, H, GATES)`` is :func:`gate_blocks` as a dict; with
    :data:`TF_GATE_ORDER` it reads TensorFlow's i, j, f, o columns.
    """
    _check_order(order)
    # Block k of `order` sits where gate GATES[k] sits in the contract's layout.
    positional = dict(zip(order, gate_blocks(a, hidden_size, axis=axis), strict=True))
    return {gate: positional[gate] for gate in GATES}


def stack_gates_in(blocks: Mapping[str, np.ndarray], order: tuple[str, ...], axis: int = 0) -> np.ndarray:
    """Stack per-gate arrays along ``axis`` in ``order`` (the inverse of :func:`gate_blocks_in`)."""
    _check_order(order)
    return stack_gates(dict(zip(GATES, (blocks[gate] for gate in order), strict=True)), axis=axis)


@dataclass(frozen=True)
class SeparateGates:
    """Per-gate parameters, keyed by gate letter: ``w_x[g]`` (H, I) acts on the
    input, ``w_h[g]`` (H, H) on h_{t-1}; ``b_x[g]``, ``b_h[g]`` (H,) are the two biases."""

    w_x: Mapping[str, np.ndarray]
    w_h: Mapping[str, np.ndarray]
    b_x: Mapping[str, np.ndarray]
    b_h: Mapping[str, np.ndarray]


def to_separate(w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> SeparateGates:
    """Split the contract's (4H, I), (4H, H) (or (4H, P) with a projection), (4H,), (4H,) into per-gate
    blocks (copies)."""
    hidden = w_hh.shape[0] // 4

    def split(a: np.ndarray) -> dict[str, np.ndarray]:
        return {g: block.copy() for g, block in zip(GATES, gate_blocks(a, hidden, axis=0), strict=True)}

    return SeparateGates(split(w_ih), split(w_hh), split(b_ih), split(b_hh))


def from_separate(sep: SeparateGates) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w_ih, w_hh, b_ih, b_hh) in the contract's layout from per-gate blocks."""
    return stack_gates(sep.w_x), stack_gates(sep.w_h), stack_gates(sep.b_x), stack_gates(sep.b_h)


def _check_concat_order(order: str) -> None:
    if order not in CONCAT_ORDERS:
        raise ValueError(f"concatenation order must be one of {CONCAT_ORDERS}, got {order!r}")


def concat_inputs(x: np.ndarray, h: np.ndarray, order: str = "xh") -> np.ndarray:
    """The concatenated input ``[x, h]`` or ``[h, x]`` along the last axis (the columns of :func:`to_concat`)."""
    _check_concat_order(order)
    parts = (x, h) if order == "xh" else (h, x)
    return np.concatenate(parts, axis=-1)


def split_concat_inputs(v: np.ndarray, input_size: int, order: str = "xh") -> tuple[np.ndarray, np.ndarray]:
    """(x-part, h-part) of an array whose last axis is laid out as :func:`concat_inputs`."""
    _check_concat_order(order)
    if order == "xh":
        return v[..., :input_size], v[..., input_size:]
    hidden = v.shape[-1] - input_size
    return v[..., hidden:], v[..., :hidden]


def to_concat(w_ih: np.ndarray, w_hh: np.ndarray, order: str = "xh") -> np.ndarray:
    """One (4H, I+H) matrix ``W`` with ``W @ concat_inputs(x, h, order) = W_ih x + W_hh h``."""
    return concat_inputs(w_ih, w_hh, order)


def from_concat(w: np.ndarray, input_size: int, order: str = "xh") -> tuple[np.ndarray, np.ndarray]:
    """(w_ih, w_hh) from a (4H, I+H) matrix on the concatenated input (inverse of :func:`to_concat`)."""
    w_ih, w_hh = split_concat_inputs(w, input_size, order)
    return w_ih.copy(), w_hh.copy()


def fuse_biases(b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """The single bias ``b = b_ih + b_hh`` of one-bias layouts."""
    return b_ih + b_hh


def split_fused_bias_grad(db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of b_ih and b_hh from the fused bias's gradient (the adjoint of :func:`fuse_biases`)."""
    return db.copy(), db.copy()


def to_tf_ijfo(w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow BasicLSTMCell's (kernel (I+H, 4H), bias (4H,)) from the contract's parameters.

    ``concat_inputs(x, h, "xh") @ kernel + bias`` gives the pre-activations in
    column blocks i, j, f, o. TensorFlow's forget_bias is not a parameter; the
    cell adds it inside the forget sigmoid, exactly as the contract does.
    """
    hidden = w_hh.shape[0] // 4
    w = to_concat(w_ih, w_hh, "xh")
    kernel = stack_gates_in(gate_blocks_in(w, hidden, GATES, axis=0), TF_GATE_ORDER, axis=0).T.copy()
    bias = stack_gates_in(gate_blocks_in(fuse_biases(b_ih, b_hh), hidden, GATES), TF_GATE_ORDER)
    return kernel, bias


def from_tf_ijfo(kernel: np.ndarray, bias: np.ndarray, input_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w_ih, w_hh, b) in the contract's layout from a TensorFlow kernel and bias.

    ``b`` is the fused bias b_ih + b_hh (a TensorFlow cell has one bias). The
    same call converts (d kernel, d bias) to (dW_ih, dW_hh, db); hand ``db`` to
    :func:`split_fused_bias_grad`.
    """
    hidden = kernel.shape[1] // 4
    w = stack_gates_in(gate_blocks_in(kernel.T, hidden, TF_GATE_ORDER, axis=0), GATES, axis=0)
    w_ih, w_hh = from_concat(w, input_size, "xh")
    b = stack_gates_in(gate_blocks_in(bias, hidden, TF_GATE_ORDER), GATES)
    return w_ih, w_hh, b


# ----------------------------------------------------------------------------- a user's layout

#: A user's gate letter -> the contract's: "u" (update) is the input gate; "c" and "j" the candidate.
GATE_ALIASES: Mapping[str, str] = {"i": "i", "u": "i", "f": "f", "g": "g", "c": "g", "j": "g", "o": "o"}
BIAS_KINDS = ("two", "one", "first", "last")
BIAS_SHAPES = ("flat", "row", "column", "gates")
#: The keys of the peephole vectors (H,) in :meth:`Layout.params`, by the contract's kind.
PEEPHOLE_KEYS: Mapping[str, str] = {"weight_ci": "wci", "weight_cf": "wcf", "weight_co": "wco"}
#: The key of the projection in :meth:`Layout.params`.
PROJECTION_KEY = "Wr"

__all__ += ["GATE_ALIASES", "BIAS_KINDS", "BIAS_SHAPES", "PEEPHOLE_KEYS", "PROJECTION_KEY", "Layout"]
_PEEPHOLE_NAMES = {"wci": weight_ci, "wcf": weight_cf, "wco": weight_co}
_GATE_WORDS = "i (input), f (forget), g (candidate), o (output)"


def _letter_pairs(letters: Mapping[str, str] | tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``letters`` as sorted (letter, gate) pairs (hashable), each checked."""
    pairs = tuple(sorted(dict(letters).items())) if letters else ()
    for letter, gate in pairs:
        if not (isinstance(letter, str) and len(letter) == 1) or gate not in GATES:
            raise ValueError(
                f"Layout.letters: {letter!r} -> {gate!r}: map one letter to one of the contract's gates "
                f"{_GATE_WORDS}, e.g. letters={{'z': 'g'}}"
            )
    return pairs


@dataclass(frozen=True)
class Layout:
    """How someone's code stores one LSTM layer's parameters, to convert to and from the contract's.

    Attributes:
        gates: the order of the gate blocks, in the user's letters (:data:`GATE_ALIASES`, plus
            ``letters``): "ifgo" (torch, the contract), "ifog" (cs231n, Karpathy), "ijfo"
            (TensorFlow), "ifco" (Keras); with ``per_gate`` the letters also name the dict keys.
        letters: more gate letters, letter -> contract gate (i, f, g, o), e.g. ``{"z": "g"}`` or
            ``{"a": "g"}`` for code naming the candidate z or a; they override the aliases.
        interleaved: the 4H axis is unit-major, row k = unit k // 4, gate ``gates[k % 4]``
            (Chainer; z reshaped to (B, H, 4)); else gate-major blocks of H (Note [Interleaved gates]).
        rows: weights act from the right on row vectors (``x @ W``, shape (inputs, 4H)); the
            contract's act from the left (``W @ x``, (4H, inputs)). Also transposes the projection.
        concat: ``None``: two matrices ``Wx`` (on the layer's input) and ``Wh`` (on h); ``"xh"``
            or ``"hx"``: one matrix ``W`` on the concatenation [x, h] or [h, x].
        bias: ``"two"``: ``bx`` and ``bh`` (torch's b_ih, b_hh); ``"one"``: ``b = b_ih + b_hh``;
            ``"first"`` / ``"last"``: b is the first / last row (or column, without ``rows``) of
            the concatenated ``W``, whose input is then [1, x, h] / [x, h, 1] (Karpathy's).
        bias_shape: of each bias array: ``"flat"`` (n,), ``"row"`` (1, n), ``"column"`` (n, 1);
            ``"gates"``: (4, H), one row per gate in ``gates`` order (not with ``per_gate`` or
            ``interleaved``).
        per_gate: every weight and bias is a dict gate letter -> that gate's block
            (weights (H, inputs), or (inputs, H) with ``rows``); not with ``interleaved``.
        fold_forget_bias: add the case's forget_bias to the forget gate's bias, for code that has
            no forget_bias of its own (the contract adds it inside the sigmoid: the same thing).

    :meth:`params` gives one layer's direction in this layout: the keys above, then with
    peepholes ``"wci"``, ``"wcf"``, ``"wco"`` (H,) (input, forget, output gate, whatever the
    letters) and with a projection ``"Wr"``, the contract's W_hr (P, H), or (H, P) with ``rows``.
    :meth:`grads` takes the user's gradients in this layout back to the contract's names. Every
    map is a permutation and a reshape (a sum for one bias), so ``grads`` of a layout's own
    arrays is exact.
    """

    gates: str = "ifgo"
    rows: bool = False
    concat: str | None = None
    bias: str = "two"
    bias_shape: str = "flat"
    per_gate: bool = False
    fold_forget_bias: bool = False
    interleaved: bool = False
    letters: Mapping[str, str] | tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "letters", _letter_pairs(self.letters))
        aliases = self.aliases
        unknown = [letter for letter in self.gates if letter not in aliases]
        if unknown or len(self.gates) != len(GATES):
            fix = f"map it with letters={{{unknown[0]!r}: 'g'}} ({_GATE_WORDS})" if unknown else "four letters"
            raise ValueError(
                f"Layout.gates: expected the four gates in your order, e.g. 'ifgo' or 'ifog' "
                f"(letters {', '.join(aliases)}; u = input, c or j = candidate), got {self.gates!r}; "
                f"{f'{unknown[0]!r} is not a gate letter: ' if unknown else ''}{fix}"
            )
        canonical = [aliases[letter] for letter in self.gates]
        for gate in GATES:
            same = [letter for letter, c in zip(self.gates, canonical, strict=True) if c == gate]
            if len(same) > 1:
                raise ValueError(
                    f"Layout.gates: the letters {' and '.join(map(repr, same))} of {self.gates!r} both mean gate "
                    f"{gate!r}; name each of {_GATE_WORDS} once (letters={{...}} maps your own letters)"
                )
        if self.concat not in (None, *CONCAT_ORDERS):
            raise ValueError(f"Layout.concat: expected None, 'xh' or 'hx', got {self.concat!r}")
        if self.bias not in BIAS_KINDS:
            raise ValueError(f"Layout.bias: expected one of {BIAS_KINDS}, got {self.bias!r}")
        if self.bias in ("first", "last") and self.concat is None:
            raise ValueError("Layout.bias: 'first' and 'last' put the bias into the concatenated W: set concat")
        grouped = self.per_gate or self.interleaved
        if self.bias_shape not in BIAS_SHAPES or (grouped and self.bias_shape == "gates"):
            raise ValueError(f"Layout.bias_shape: expected one of {BIAS_SHAPES} ('gates' not per gate or interleaved)")
        if self.per_gate and self.interleaved:
            raise ValueError("Layout: per_gate arrays have no 4H axis to interleave; set one of per_gate, interleaved")

    # ------------------------------------------------------------------ the pieces

    @property
    def aliases(self) -> dict[str, str]:
        """Every gate letter this layout knows -> the contract's gate: :data:`GATE_ALIASES` and ``letters``."""
        return {**GATE_ALIASES, **dict(self.letters)}

    @property
    def order(self) -> tuple[str, ...]:
        """The gate blocks' order in the contract's letters."""
        aliases = self.aliases
        return tuple(aliases[letter] for letter in self.gates)

    def keys(self, config: LSTMConfig) -> tuple[str, ...]:
        """The keys of :meth:`params` for ``config``, in order: weights, biases, peepholes, projection."""
        keys = self._weight_keys() + self._bias_keys()
        if config.peepholes:
            keys += tuple(PEEPHOLE_KEYS.values())
        return keys + ((PROJECTION_KEY,) if config.proj_size else ())

    def _weight_keys(self) -> tuple[str, ...]:
        return ("W",) if self.concat else ("Wx", "Wh")

    def _bias_keys(self) -> tuple[str, ...]:
        return {"two": ("bx", "bh"), "one": ("b",)}.get(self.bias, ())

    def _to_user_rows(self, a: np.ndarray, hidden: int) -> np.ndarray:
        """A contract 4H-row array (4H, ...) with its rows in the user's order."""
        a = stack_gates_in(gate_blocks_in(a, hidden, GATES, axis=0), self.order, axis=0)
        return interleave(a, hidden) if self.interleaved else a

    def _from_user_rows(self, a: np.ndarray, hidden: int) -> np.ndarray:
        a = deinterleave(a, hidden) if self.interleaved else a
        return stack_gates_in(gate_blocks_in(a, hidden, self.order, axis=0), GATES, axis=0)

    def _shape_bias(self, b: np.ndarray, hidden: int) -> np.ndarray:
        """A (n,) bias in the user's shape (per gate: n = H)."""
        if self.bias_shape == "row":
            return b.reshape(1, -1)
        if self.bias_shape == "column":
            return b.reshape(-1, 1)
        if self.bias_shape == "gates":
            return b.reshape(4, hidden)
        return b

    def _split(self, a: np.ndarray, hidden: int, axis: int) -> dict[str, np.ndarray]:
        """Per-gate blocks of a user-ordered 4H axis, keyed by the user's letters."""
        blocks = gate_blocks(a, hidden, axis=axis)
        return {letter: np.ascontiguousarray(block) for letter, block in zip(self.gates, blocks, strict=True)}

    def _join(self, blocks: Mapping[str, np.ndarray], axis: int) -> np.ndarray:
        missing = [letter for letter in self.gates if letter not in blocks]
        if missing:
            raise ValueError(f"Layout: per-gate arrays missing for gate(s) {missing} (keys {list(self.gates)})")
        return np.concatenate([np.asarray(blocks[letter]) for letter in self.gates], axis=axis)

    # ------------------------------------------------------------------ contract -> user

    def params(self, case: Case, layer: int = 0, direction: int = 0) -> dict[str, object]:
        """Layer ``layer``'s parameters of ``case`` in this layout, direction ``direction`` (1: reverse).

        Keys (:meth:`keys`): ``"Wx"``, ``"Wh"`` (or ``"W"`` with ``concat``) and ``"bx"``, ``"bh"``
        (bias "two") or ``"b"`` (bias "one"); with ``per_gate`` each value is a dict gate letter ->
        block; then ``"wci"``, ``"wcf"``, ``"wco"`` (H,) with peepholes and ``"Wr"`` with a
        projection. Layer k > 0 reads the layer below, D * P wide. Fresh copies in the case's dtype."""
        cfg, p = case.config, case.params
        _check_layer(cfg, layer, direction)
        hidden = cfg.hidden_size
        w_ih, w_hh = np.asarray(p[weight_ih(layer, direction)]), np.asarray(p[weight_hh(layer, direction)])
        b_ih, b_hh = np.array(p[bias_ih(layer, direction)]), np.array(p[bias_hh(layer, direction)])
        if self.fold_forget_bias and cfg.forget_bias:
            b_ih[gate_slice("f", hidden)] += cfg.forget_bias
        biases = (b_ih, b_hh) if self.bias == "two" else (fuse_biases(b_ih, b_hh),)
        biases = tuple(self._to_user_rows(b, hidden) for b in biases)
        if self.concat:
            parts = [self._to_user_rows(to_concat(w_ih, w_hh, self.concat), hidden)]
            if self.bias in ("first", "last"):
                column = biases[0][:, None]
                parts[0] = np.concatenate([column, parts[0]] if self.bias == "first" else [parts[0], column], axis=1)
        else:
            parts = [self._to_user_rows(w_ih, hidden), self._to_user_rows(w_hh, hidden)]
        weights = [w.T.copy() if self.rows else w.copy() for w in parts]
        out: dict[str, object] = {}
        for key, w in zip(self._weight_keys(), weights, strict=True):
            out[key] = self._split(w, hidden, axis=1 if self.rows else 0) if self.per_gate else w
        for key, b in zip(self._bias_keys(), biases, strict=False):
            if self.per_gate:
                out[key] = {g: self._shape_bias(v, hidden) for g, v in self._split(b, hidden, axis=0).items()}
            else:
                out[key] = self._shape_bias(b.copy(), hidden)
        if cfg.peepholes:
            out.update({key: np.array(p[name(layer, direction)]) for key, name in _PEEPHOLE_NAMES.items()})
        if cfg.proj_size:
            w_hr = np.asarray(p[weight_hr(layer, direction)])
            out[PROJECTION_KEY] = w_hr.T.copy() if self.rows else w_hr.copy()
        return out

    # ------------------------------------------------------------------ user -> contract

    def grads(
        self, user: Mapping[str, object], case: Case, layer: int = 0, direction: int = 0
    ) -> dict[str, np.ndarray]:
        """The contract's gradients of layer ``layer``'s direction ``direction`` (``weight_ih_l{k}``
        ... ``bias_hh_l{k}``, the peepholes' and the projection's, ``_reverse`` for direction 1)
        from the user's gradients of the arrays :meth:`params` gives (same keys, same shapes). A
        fused bias's gradient goes to both b_ih and b_hh; with bias "two", ``bh`` may be left out
        when the code has one bias (it then gets ``bx``'s gradient). A missing or unknown key
        raises ValueError."""
        cfg = case.config
        _check_layer(cfg, layer, direction)
        hidden = cfg.hidden_size
        input_size = cfg.input_size if layer == 0 else cfg.top_width
        expected = self.keys(cfg)
        missing = [k for k in expected if k not in user and not (k == "bh" and "bx" in user)]
        unknown = [k for k in user if k not in expected]
        if missing or unknown:
            raise ValueError(
                f"Layout.grads: missing {missing}, unknown {unknown}; expected the keys {list(expected)} "
                "(those of Layout.params for this case)"
            )

        def whole(key: str, axis: int) -> np.ndarray:
            value = user[key]
            return self._join(value, axis) if self.per_gate else np.asarray(value)

        weights = [whole(k, 1 if self.rows else 0) for k in self._weight_keys()]
        weights = [w.T if self.rows else w for w in weights]
        db = None
        if self.concat:
            w = weights[0]
            if self.bias in ("first", "last"):
                db, w = (w[:, 0], w[:, 1:]) if self.bias == "first" else (w[:, -1], w[:, :-1])
            w_ih, w_hh = from_concat(self._from_user_rows(w, hidden), input_size, self.concat)
        else:
            w_ih, w_hh = (self._from_user_rows(w, hidden) for w in weights)
        out = {weight_ih(layer, direction): np.array(w_ih), weight_hh(layer, direction): np.array(w_hh)}
        if self.bias == "two":
            db_x = self._flat_bias(user["bx"], hidden)
            out[bias_ih(layer, direction)] = db_x
            out[bias_hh(layer, direction)] = self._flat_bias(user["bh"], hidden) if "bh" in user else db_x
        else:
            db = self._flat_bias(user["b"], hidden) if db is None else self._from_user_rows(np.asarray(db), hidden)
            out[bias_ih(layer, direction)], out[bias_hh(layer, direction)] = split_fused_bias_grad(db)
        if cfg.peepholes:
            out.update(
                {name(layer, direction): np.reshape(user[key], -1).copy() for key, name in _PEEPHOLE_NAMES.items()}
            )
        if cfg.proj_size:
            w_hr = np.asarray(user[PROJECTION_KEY])
            out[weight_hr(layer, direction)] = np.array(w_hr.T if self.rows else w_hr)
        return out

    def _flat_bias(self, value: object, hidden: int) -> np.ndarray:
        b = self._join({g: np.reshape(v, -1) for g, v in value.items()}, 0) if self.per_gate else np.reshape(value, -1)
        return self._from_user_rows(np.asarray(b), hidden)


def _check_layer(config: LSTMConfig, layer: int, direction: int) -> None:
    if not 0 <= layer < config.num_layers:
        raise ValueError(f"Layout: layer {layer!r} is not one of the case's layers 0..{config.num_layers - 1}")
    if direction not in range(config.num_directions):
        raise ValueError(
            f"Layout: direction {direction!r} is not one of the case's: 0 (forward)"
            + (" and 1 (reverse)" if config.bidirectional else "; the case is not bidirectional")
        )
