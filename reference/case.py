"""A case: a frozen config plus every array the model and its loss need.

:class:`Case` validates itself on construction, so every case in the harness
is well formed; its arrays are private read-only copies, so neither an
implementation nor an oracle can change what the others see.
:func:`make_case` is the seeded builder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from lstm_gradcheck.reference.config import (
    BFLOAT16,
    RANDOM,
    UPSTREAM,
    ZERO,
    CaseError,
    LSTMConfig,
    round_to_dtype,
)
from lstm_gradcheck.reference.layout import STATE_INPUTS, param_shapes

__all__ = [
    "Case",
    "GradsFn",
    "as_lengths",
    "make_case",
    "random_final_state_grads",
    "random_inputs",
    "random_params",
    "random_targets",
    "scored_steps_target_shape",
    "state_shapes",
    "step_mask",
]


def scored_steps_target_shape(config: LSTMConfig) -> tuple[int, ...]:
    """Shape of ``case.targets``: (T, B) or (B,) for class indices, plus (O,) for mse/bce and
    (D*P,) for ``upstream``, whose targets are the upstream gradient dh_top of the top layer's
    output (both directions' h, each of width P = proj_size or H)."""
    lead = (config.seq_len, config.batch_size) if config.loss_at == "every" else (config.batch_size,)
    if config.loss == "cross_entropy":
        return lead
    return (*lead, config.top_width if config.loss == UPSTREAM else config.output_size)


def state_shapes(config: LSTMConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of h0 (and h_n, dh_n) and of c0 (and c_n, dc_n): (L*D, B, P) and (L*D, B, H), state
    k * D + d being layer k's direction d (P = proj_size or H, D = 2 when bidirectional)."""
    states = config.num_layers * config.num_directions
    return (states, config.batch_size, config.h_size), (states, config.batch_size, config.hidden_size)


def _frozen_array(name: str, value: Any, shape: tuple[int, ...], dtype: np.dtype, *, finite: bool = True) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise CaseError(
            f"case.{name}: expected a numpy array of shape {shape} and dtype {dtype}, got {type(value).__name__}"
        )
    if value.shape != shape:
        raise CaseError(f"case.{name}: expected shape {shape}, got {value.shape}")
    if value.dtype != dtype:
        raise CaseError(f"case.{name}: expected dtype {dtype}, got {value.dtype} (convert with .astype(np.{dtype}))")
    if finite and not np.isfinite(value).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
        raise CaseError(f"case.{name}: expected finite values, got {value[bad]} at index {bad}")
    out = np.array(value, dtype=dtype, order="C", copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Case:
    """One fully specified input of the contract's model.

    Attributes (shapes with T = seq_len, B = batch_size, I = input_size,
    H = hidden_size, L = num_layers, O = output_size, P = proj_size or H,
    D = 2 when bidirectional else 1):
        config: the frozen :class:`LSTMConfig`.
        params: name -> array, names and shapes as ``torch.nn.LSTM`` plus the
            peepholes and ``head.weight`` (O, D*P) and ``head.bias`` (O,)
            (:func:`lstm_gradcheck.reference.layout.param_shapes`).
        x: (T, B, I) inputs.
        h0: (L*D, B, P), c0: (L*D, B, H) initial states (zero where ``config.h0`` /
            ``config.c0`` is "zero").
        targets: int64 class indices (T, B) / (B,) for cross_entropy, floats
            (T, B, O) / (B, O) for mse and bce (bce in [0, 1]); for ``upstream``
            the upstream gradient of the top layer's output, floats (T, B, D*P) /
            (B, D*P) (also available as :attr:`dh_top`).
        lengths: ``None`` or int64 (B,) with 1 <= lengths[b] <= T.
        dh_n (L*D, B, P), dc_n (L*D, B, H): upstream gradients of the final states when
            ``config.final_state``, else ``None``.
        seed, weight_scale: the arguments :func:`make_case` was built with, if
            any (for reports and reproducing command lines).
    """

    config: LSTMConfig
    params: Mapping[str, np.ndarray]
    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray | None = None
    dh_n: np.ndarray | None = None
    dc_n: np.ndarray | None = None
    seed: int | None = None
    weight_scale: float | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        if not isinstance(cfg, LSTMConfig):
            raise CaseError(f"case.config: expected an LSTMConfig, got {type(cfg).__name__}")
        dtype = cfg.np_dtype
        shapes = param_shapes(cfg)
        if not isinstance(self.params, Mapping):
            raise CaseError(f"case.params: expected a dict name -> array, got {type(self.params).__name__}")
        missing = [n for n in shapes if n not in self.params]
        extra = [n for n in self.params if n not in shapes]
        if missing or extra:
            raise CaseError(
                "case.params: expected exactly the parameters "
                f"{', '.join(shapes)}; missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        params = {n: _frozen_array(f"params[{n!r}]", self.params[n], s, dtype) for n, s in shapes.items()}
        set_ = object.__setattr__
        set_(self, "params", MappingProxyType(params))
        shapes = dict(zip(("h0", "c0"), state_shapes(cfg), strict=True))
        shapes.update(dh_n=shapes["h0"], dc_n=shapes["c0"])
        set_(self, "x", _frozen_array("x", self.x, (cfg.seq_len, cfg.batch_size, cfg.input_size), dtype))
        for name in ("h0", "c0"):
            value = _frozen_array(name, getattr(self, name), shapes[name], dtype)
            if getattr(cfg, name) == ZERO and np.any(value != 0):
                raise CaseError(
                    f"case.{name}: config.{name} is 'zero', so expected zeros, got a nonzero value "
                    f"(build the case with config.{name} = 'random' for a nonzero {name})"
                )
            set_(self, name, value)
        set_(self, "targets", self._checked_targets())
        set_(self, "lengths", self._checked_lengths())
        for name in ("dh_n", "dc_n"):
            value = getattr(self, name)
            if cfg.final_state:
                if value is None:
                    raise CaseError(
                        f"case.{name}: config.final_state is True, so expected an array of shape {shapes[name]}, "
                        "got None"
                    )
                set_(self, name, _frozen_array(name, value, shapes[name], dtype))
            elif value is not None:
                raise CaseError(f"case.{name}: config.final_state is False, so expected None, got an array")
        if cfg.dtype == BFLOAT16:
            self._check_bfloat16()

    def _check_bfloat16(self) -> None:
        """A bfloat16 case's float32 arrays must hold bfloat16 values, or code computing in bfloat16
        would judge other numbers than the oracles."""
        arrays = {**self.arrays(), "dh_n": self.dh_n, "dc_n": self.dc_n}
        if self.config.loss != "cross_entropy":
            arrays["targets"] = self.targets
        for name, value in arrays.items():
            if value is not None and not np.array_equal(round_to_dtype(value, BFLOAT16), value):
                raise CaseError(f"case.{name}: a bfloat16 case holds bfloat16 values (round with round_to_dtype)")

    def _checked_targets(self) -> np.ndarray:
        cfg = self.config
        shape = scored_steps_target_shape(cfg)
        t = self.targets
        if cfg.loss == "cross_entropy":
            if not isinstance(t, np.ndarray) or t.dtype != np.int64:
                got = t.dtype if isinstance(t, np.ndarray) else type(t).__name__
                raise CaseError(f"case.targets: cross_entropy expects int64 class indices of shape {shape}, got {got}")
            out = _frozen_array("targets", t, shape, np.dtype(np.int64), finite=False)
            if out.size and (out.min() < 0 or out.max() >= cfg.output_size):
                raise CaseError(
                    f"case.targets: class indices must lie in [0, {cfg.output_size - 1}] "
                    f"(output_size {cfg.output_size}), got values in [{out.min()}, {out.max()}]"
                )
            return out
        what = "targets (the upstream gradient dh_top)" if cfg.loss == UPSTREAM else "targets"
        out = _frozen_array(what, t, shape, cfg.np_dtype)
        if cfg.loss == "bce" and out.size and (out.min() < 0 or out.max() > 1):
            raise CaseError(f"case.targets: bce targets must lie in [0, 1], got values in [{out.min()}, {out.max()}]")
        return out

    def _checked_lengths(self) -> np.ndarray | None:
        cfg = self.config
        if self.lengths is None:
            return None
        lengths = self.lengths
        if not isinstance(lengths, np.ndarray) or lengths.dtype.kind not in "iu":
            raise CaseError(
                f"case.lengths: expected None or an int64 array of shape ({cfg.batch_size},), got {lengths!r}"
            )
        if lengths.shape != (cfg.batch_size,):
            raise CaseError(
                f"case.lengths: expected one length per sequence, shape ({cfg.batch_size},), got shape {lengths.shape}"
            )
        if lengths.min() < 1 or lengths.max() > cfg.seq_len:
            raise CaseError(
                f"case.lengths: every length must lie in [1, seq_len={cfg.seq_len}], got {lengths.tolist()}"
            )
        out = np.array(lengths, dtype=np.int64, copy=True)
        out.setflags(write=False)
        return out

    # ------------------------------------------------------------------ helpers

    def __repr__(self) -> str:
        # Compact: Hypothesis prints this for a falsifying example, and the arrays follow from the seed.
        return f"Case({self.describe()})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """What Hypothesis's (IPython-style) pretty printer shows: the compact repr."""
        printer.text(repr(self))

    @property
    def dh_top(self) -> np.ndarray | None:
        """The upstream gradient of the top layer's output, (T, B, D*P) or (B, D*P) for ``loss_at``
        last, when ``config.loss`` is ``upstream`` (it is ``targets``); else None."""
        return self.targets if self.config.loss == UPSTREAM else None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every differentiable array by gradient name: the parameters, x, h0, c0."""
        return {**self.params, **{name: getattr(self, name) for name in STATE_INPUTS}}

    def replace(self, **changes: Any) -> Case:
        """A new validated case with some attributes (or ``config``) changed."""
        return dataclasses.replace(self, **changes)

    def with_arrays(self, arrays: Mapping[str, np.ndarray]) -> Case:
        """A new case with some parameters and/or x, h0, c0 replaced, by gradient name.

        A nonzero h0 or c0 given to a case whose config says "zero" makes that setting "random",
        so the config always describes the arrays (a moved or perturbed state is no longer zero)."""
        params = dict(self.params)
        changes: dict[str, Any] = {}
        states: dict[str, str] = {}
        for name, value in arrays.items():
            if name in STATE_INPUTS:
                changes[name] = value
                if name != "x" and np.any(np.asarray(value) != 0):
                    states[name] = RANDOM
            elif name in params:
                params[name] = value
            else:
                raise CaseError(f"case: no array named {name!r}")
        if states:
            changes["config"] = self.config.replace(**states)
        return self.replace(params=params, **changes)

    def truncated(self, steps: int) -> Case:
        """The case cut to its first ``steps`` steps (lengths clipped to ``steps``).

        With ``loss_at == "last"`` each sequence is then scored at its last step
        within the cut; the final-state term applies to the states after it.
        """
        cfg = self.config
        if not 1 <= steps <= cfg.seq_len:
            raise CaseError(f"truncated: steps must lie in [1, seq_len={cfg.seq_len}], got {steps}")
        targets = self.targets[:steps] if cfg.loss_at == "every" else self.targets
        lengths = None if self.lengths is None else np.minimum(self.lengths, steps)
        return self.replace(config=cfg.replace(seq_len=steps), x=self.x[:steps], targets=targets, lengths=lengths)

    def astype(self, dtype: str) -> Case:
        """The same case in another dtype (floats are cast; class indices stay int64).

        A case is immutable, so the case itself is returned when it already has ``dtype``."""
        if dtype == self.config.dtype:
            return self
        cfg = self.config.replace(dtype=dtype)

        def cast(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else round_to_dtype(a, dtype)

        targets = self.targets if self.config.loss == "cross_entropy" else cast(self.targets)  # dh_top too
        return Case(
            config=cfg,
            params={n: round_to_dtype(a, dtype) for n, a in self.params.items()},
            x=cast(self.x),
            h0=cast(self.h0),
            c0=cast(self.c0),
            targets=targets,
            lengths=self.lengths,
            dh_n=cast(self.dh_n),
            dc_n=cast(self.dc_n),
            seed=self.seed,
            weight_scale=self.weight_scale,
        )

    def writable_copy(self) -> Case:
        """A copy whose arrays are writable, handed to implementations under test."""
        copy = object.__new__(Case)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = value.copy()
            elif f.name == "params":
                value = {n: a.copy() for n, a in value.items()}
            object.__setattr__(copy, f.name, value)
        return copy

    def describe(self) -> str:
        """One line: every config field, the lengths and the seed."""
        fields = " ".join(f"{k}={v}" for k, v in self.config.as_dict().items())
        lengths = "none" if self.lengths is None else ",".join(map(str, self.lengths.tolist()))
        return f"{fields} lengths={lengths} seed={self.seed} weight_scale={self.weight_scale}"


#: The contract's implementation protocol: ``grads(case) -> (loss, {name: gradient})``.
GradsFn = Callable[[Case], tuple[float, Mapping[str, np.ndarray]]]


def step_mask(lengths: np.ndarray | None, seq_len: int) -> np.ndarray | None:
    """(T, B, 1) bool mask of valid steps (t < lengths[b]), or None without lengths."""
    if lengths is None:
        return None
    return (np.arange(seq_len)[:, None] < np.asarray(lengths)[None, :])[..., None]


def random_params(config: LSTMConfig, rng: np.random.Generator, weight_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Every parameter ~ U(-s, s), s = weight_scale / sqrt(H) (torch's init when 1); both biases, the
    peepholes and the projection random too."""
    bound = weight_scale / np.sqrt(config.hidden_size)
    return {
        name: round_to_dtype(rng.uniform(-bound, bound, size=shape), config.dtype)
        for name, shape in param_shapes(config).items()
    }


def random_inputs(
    config: LSTMConfig, rng: np.random.Generator, input_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (T, B, I) ~ N(0, input_scale^2); h0 (L*D, B, P) ~ U(-1, 1); c0 (L*D, B, H) ~ N(0, 1)."""
    dtype = config.dtype
    h_state, c_state = state_shapes(config)
    x = round_to_dtype(input_scale * rng.standard_normal((config.seq_len, config.batch_size, config.input_size)), dtype)
    return (
        x,
        round_to_dtype(rng.uniform(-1.0, 1.0, size=h_state), dtype),
        round_to_dtype(rng.standard_normal(c_state), dtype),
    )


def random_targets(config: LSTMConfig, rng: np.random.Generator) -> np.ndarray:
    """Uniform class indices (cross_entropy), N(0, 1) (mse, and the upstream gradient dh_top of
    ``upstream``) or U(0, 1) soft labels (bce)."""
    shape = scored_steps_target_shape(config)
    if config.loss == "cross_entropy":
        return rng.integers(0, config.output_size, size=shape, dtype=np.int64)
    if config.loss in ("mse", UPSTREAM):
        return round_to_dtype(rng.standard_normal(shape), config.dtype)
    return round_to_dtype(rng.uniform(0.0, 1.0, size=shape), config.dtype)


def random_final_state_grads(
    config: LSTMConfig, rng: np.random.Generator
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """dh_n (L*D, B, P), dc_n (L*D, B, H) ~ N(0, 1) when ``config.final_state``, else (None, None)."""
    if not config.final_state:
        return None, None
    h_state, c_state = state_shapes(config)
    return (
        round_to_dtype(rng.standard_normal(h_state), config.dtype),
        round_to_dtype(rng.standard_normal(c_state), config.dtype),
    )


def as_lengths(lengths: Any) -> np.ndarray | None:
    """``None`` or an int64 array from any sequence of ints (validated by :class:`Case`)."""
    if lengths is None:
        return None
    try:
        return np.asarray(lengths, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise CaseError(f"case.lengths: expected integers, got {lengths!r}") from None


def make_case(
    config: LSTMConfig,
    seed: int = 0,
    lengths: Any = None,
    *,
    weight_scale: float = 1.0,
    input_scale: float = 1.0,
) -> Case:
    """Build a random, fully nonzero case for ``config`` from ``seed``.

    Every array that enters the loss is random (see :func:`random_params`,
    :func:`random_inputs`, :func:`random_targets`,
    :func:`random_final_state_grads`), but h0 and c0 where the config says
    "zero": those are drawn too and then zeroed, so a zero-state case is the
    random-state case of the same seed with zero initial states. Values are
    drawn in float64 and then cast, so the float32 case of a seed is the
    rounded float64 case.

    Args:
        config: the case's config.
        seed: seeds a private ``numpy.random.Generator``.
        lengths: ``None`` or a sequence of B ints in [1, seq_len].
        weight_scale: multiplies the weight and bias range (large values saturate gates).
        input_scale: standard deviation of ``x``.
    """
    if not isinstance(config, LSTMConfig):
        raise CaseError(f"make_case: expected an LSTMConfig, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CaseError(f"seed: expected an integer >= 0, got {seed!r}")
    if not (np.isfinite(weight_scale) and weight_scale > 0):
        raise CaseError(f"weight_scale: expected a finite number > 0, got {weight_scale!r}")
    # One stream per part: changing the loss or the lengths never changes the weights.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)]
    params = random_params(config, streams[0], weight_scale)
    x, h0, c0 = random_inputs(config, streams[1], input_scale)
    h0 = np.zeros_like(h0) if config.h0 == ZERO else h0
    c0 = np.zeros_like(c0) if config.c0 == ZERO else c0
    targets = random_targets(config, streams[2])
    dh_n, dc_n = random_final_state_grads(config, streams[3])
    return Case(
        config, params, x, h0, c0, targets, as_lengths(lengths), dh_n, dc_n, seed=int(seed), weight_scale=weight_scale
    )
