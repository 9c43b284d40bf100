"""Hypothesis strategies for cases of the contract, built from small parts.

``dims`` -> ``configs`` -> ``lengths_for``, ``weight_scales``, ``SEEDS`` ->
``judged_cases`` -> ``cases``. The arrays come from the reference's seeded part builders
(params, inputs, targets, final-state gradients), so they are fast to draw
and every case is reproducible from its seed; shapes and settings are drawn
directly, so a failure shrinks towards the simplest case that still fails:
one layer, one step, size 1, forget_bias 0, no lengths, sum reduction,
float64, tanh cell, no final-state term, random initial states, and none
of the LSTM family's settings (peepholes, projection, bidirectional,
coupled gates; each drawn one time in six, a projection only where H >= 2).

Every array that enters the loss is random and nonzero: weights, both
biases, the peepholes and the projection, h0, c0 (but where a case draws zero
initial states, one time in four each), x, targets (and so the upstream weighting of the loss; for the
layer-only loss ``upstream``, the upstream gradient itself) and, with
``final_state``, dh_n and dc_n. There is never an all-ones upstream gradient.

:class:`CaseSpace` bounds what is drawn; :data:`DEFAULT_SPACE` is what the
``dev`` and ``ci`` profiles and ``lstm-gradcheck search`` use,
:data:`THOROUGH_SPACE` adds sequences up to 200 steps, saturated gates
(weights up to 10x torch's init, forget_bias up to +-20) and vanishing
gradients.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from lstm_gradcheck.oracles.judging import Answer, JudgingContext, exact_answer, judging_context, unjudgeable
from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import CHOICES, NUMPY_DTYPES, UPSTREAM, LSTMConfig

__all__ = [
    "CaseSpace",
    "DEFAULT_SPACE",
    "THOROUGH_SPACE",
    "active_space",
    "seq_lens",
    "dims",
    "forget_biases",
    "configs",
    "lengths_for",
    "weight_scales",
    "SEEDS",
    "Judged",
    "judged_cases",
    "cases",
]

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


@dataclass(frozen=True)
class CaseSpace:
    """Bounds of the drawn cases, validated once here.

    The categorical fields are named as the config fields they bound (``loss``,
    ``reduction``, ``h0``, ...; :data:`~lstm_gradcheck.reference.config.CHOICES`)
    and list the allowed values, the simplest first (Hypothesis shrinks towards
    it). The loss ``upstream`` always takes reduction ``sum`` (it has nothing to
    average), so it needs ``"sum"`` in ``reduction``. ``with_projection`` allows
    ``proj_size`` in [1, H - 1] (an integer setting, so not among the choices),
    ``require_projection`` draws one always (and H >= 2); :meth:`plain` forbids
    every setting of the LSTM family.
    """

    max_input: int = 12
    max_hidden: int = 16
    max_layers: int = 3
    max_output: int = 5
    max_batch: int = 5
    min_batch: int = 1
    short_seq: int = 12
    long_seq: int = 40
    usual_input: int = 6
    usual_hidden: int = 6
    min_seq: int = 1
    min_layers: int = 1
    loss_at: tuple[str, ...] = CHOICES["loss_at"]
    loss: tuple[str, ...] = CHOICES["loss"]
    reduction: tuple[str, ...] = CHOICES["reduction"]
    cell_output: tuple[str, ...] = CHOICES["cell_output"]
    dtype: tuple[str, ...] = NUMPY_DTYPES
    final_state: tuple[bool, ...] = CHOICES["final_state"]
    h0: tuple[str, ...] = CHOICES["h0"]
    c0: tuple[str, ...] = CHOICES["c0"]
    peepholes: tuple[bool, ...] = CHOICES["peepholes"]
    bidirectional: tuple[bool, ...] = CHOICES["bidirectional"]
    coupled: tuple[bool, ...] = CHOICES["coupled"]
    with_projection: bool = True
    require_projection: bool = False
    forget_bias_special: tuple[float, ...] = (1.0, -1.0, 5.0, -5.0)
    forget_bias_range: float = 6.0
    weight_scales: tuple[float, ...] = (1.0, 0.5, 2.0)
    with_lengths: bool = True
    require_lengths: bool = False
    nonzero_forget_bias: bool = False

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise ValueError(f"CaseSpace.{name}: expected a non-empty tuple of values, got {values!r}")
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise ValueError(f"CaseSpace.{name}: unknown value(s) {unknown}; choose from {allowed}")
        if "sum" not in self.reduction and all(loss == UPSTREAM for loss in self.loss):
            raise ValueError("CaseSpace: the loss 'upstream' needs reduction 'sum', which the space excludes")
        sizes = ("max_input", "max_hidden", "max_layers", "max_output", "max_batch", "min_batch", "short_seq")
        for name in (*sizes, "long_seq", "usual_input", "usual_hidden", "min_seq", "min_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CaseSpace.{name}: expected an integer >= 1, got {value!r}")
        for low, high in (("min_batch", "max_batch"), ("short_seq", "long_seq"), ("min_seq", "short_seq"),
                          ("min_layers", "max_layers")):  # fmt: skip
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"CaseSpace: {low} ({getattr(self, low)}) exceeds {high} ({getattr(self, high)})")
        if not (isinstance(self.forget_bias_range, (int, float)) and 0 <= self.forget_bias_range < 1e6):
            raise ValueError(f"CaseSpace.forget_bias_range: expected a number >= 0, got {self.forget_bias_range!r}")
        if self.require_projection and (not self.with_projection or self.max_hidden < 2):
            raise ValueError("CaseSpace: require_projection needs with_projection and max_hidden >= 2")

    def restrict(self, **changes: object) -> CaseSpace:
        return replace(self, **changes)

    def with_bounds(
        self,
        *,
        max_hidden: int | None = None,
        max_input: int | None = None,
        max_seq_len: int | None = None,
        max_batch: int | None = None,
        max_layers: int | None = None,
        max_output: int | None = None,
        forget_bias_range: float | None = None,
    ) -> CaseSpace:
        """The space with new upper bounds (None keeps one); the usual sizes are capped to them."""
        changes: dict[str, object] = {}
        if max_hidden is not None:
            changes.update(max_hidden=max_hidden, usual_hidden=min(self.usual_hidden, max_hidden))
        if max_input is not None:
            changes.update(max_input=max_input, usual_input=min(self.usual_input, max_input))
        if max_seq_len is not None:
            changes.update(long_seq=max_seq_len, short_seq=min(self.short_seq, max_seq_len))
            changes["min_seq"] = min(self.min_seq, max_seq_len)
        if max_batch is not None:
            changes.update(max_batch=max_batch, min_batch=min(self.min_batch, max_batch))
        if max_layers is not None:
            changes.update(max_layers=max_layers, min_layers=min(self.min_layers, max_layers))
        if max_output is not None:
            changes["max_output"] = max_output
        if forget_bias_range is not None:
            special = tuple(v for v in self.forget_bias_special if abs(v) <= forget_bias_range)
            changes.update(forget_bias_range=float(forget_bias_range), forget_bias_special=special)
        return replace(self, **changes)

    def plain(self) -> CaseSpace:
        """This space without the LSTM family's settings: the plain LSTM of contract v1."""
        return replace(
            self,
            peepholes=(False,),
            bidirectional=(False,),
            coupled=(False,),
            with_projection=False,
            require_projection=False,
        )

    def losses(self) -> tuple[str, ...]:
        """The losses that can be drawn (``upstream`` only where ``sum`` is allowed)."""
        return tuple(loss for loss in self.loss if loss != UPSTREAM or "sum" in self.reduction)

    def bounds(self) -> str:
        """The sizes and forget_bias range drawn, in one line (for the search's summary and help)."""

        def span(low: int, usual: int, high: int) -> str:
            return f"{low}-{high}" + (f" (mostly <= {usual})" if usual < high else "")

        special = ", ".join(f"{v:g}" for v in self.forget_bias_special)
        bias = f"[-{self.forget_bias_range:g}, {self.forget_bias_range:g}]" + (f" and {special}" if special else "")
        return (
            f"hidden {span(1, self.usual_hidden, self.max_hidden)}, input {span(1, self.usual_input, self.max_input)}, "
            f"seq_len {span(self.min_seq, self.short_seq, self.long_seq)}, "
            f"batch {self.min_batch}-{self.max_batch}, layers {self.min_layers}-{self.max_layers}, "
            f"output 1-{self.max_output}, forget_bias 0, {bias}"
        )


#: One space, or the regions of several (what support probing finds an implementation accepts).
Spaces = CaseSpace | tuple[CaseSpace, ...]

DEFAULT_SPACE = CaseSpace()
THOROUGH_SPACE = CaseSpace(
    max_hidden=24,
    usual_hidden=8,
    max_batch=6,
    long_seq=200,
    forget_bias_special=(1.0, -1.0, 5.0, -5.0, 20.0, -20.0),
    forget_bias_range=20.0,
    weight_scales=(1.0, 0.5, 2.0, 4.0, 10.0, 0.05),
)


def active_space() -> CaseSpace:
    """The space of the active Hypothesis profile: :data:`THOROUGH_SPACE` under
    ``HYPOTHESIS_PROFILE=thorough``, :data:`DEFAULT_SPACE` otherwise."""
    return THOROUGH_SPACE if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else DEFAULT_SPACE


def _mostly_up_to(low: int, usual: int, high: int) -> st.SearchStrategy[int]:
    """Mostly low..usual, one draw in four low..high.

    The wide class contains the usual values, so a large failing case shrinks to a small
    one without switching class (switching would re-map the value and could lose the failure).
    """
    if usual >= high:
        return st.integers(low, high)
    return st.integers(0, 3).flatmap(lambda k: st.integers(low, high if k == 3 else usual))


@lru_cache(maxsize=64)
def seq_lens(space: CaseSpace = DEFAULT_SPACE) -> st.SearchStrategy[int]:
    """Mostly min_seq..short_seq, one draw in four min_seq..long_seq."""
    return _mostly_up_to(space.min_seq, space.short_seq, space.long_seq)


@lru_cache(maxsize=64)
def dims(space: CaseSpace = DEFAULT_SPACE) -> st.SearchStrategy[dict[str, int]]:
    """Sizes: input and hidden (mostly up to their usual bound, sometimes up to the max),
    layers, output, batch, and :func:`seq_lens`."""
    return st.fixed_dictionaries(
        {
            "num_layers": st.integers(space.min_layers, space.max_layers),
            "seq_len": seq_lens(space),
            "hidden_size": _mostly_up_to(2 if space.require_projection else 1, space.usual_hidden, space.max_hidden),
            "input_size": _mostly_up_to(1, space.usual_input, space.max_input),
            "output_size": st.integers(1, space.max_output),
            "batch_size": st.integers(space.min_batch, space.max_batch),
        }
    )


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _spread(k: int, whole: int, bound: float) -> float:
    """The k-th point of the golden-ratio sequence over [-whole, whole], on the hundredths' midpoints."""
    hundredth = int((k * _GOLDEN) % 1.0 * 200 * whole)
    return float(np.clip(-whole + (hundredth + 0.5) / 100, -bound, bound))


@lru_cache(maxsize=64)
def forget_biases(space: CaseSpace = DEFAULT_SPACE) -> st.SearchStrategy[float]:
    """0 first, then the telling values (+-1, +-5, ...), then any in the range (0 excluded
    when ``space.nonzero_forget_bias``) on the midpoints of its hundredths, spread by the
    golden-ratio sequence so every window of the range is reached (a float strategy alone
    favours a few values)."""
    bound = space.forget_bias_range
    whole = math.ceil(bound)
    anywhere = (
        st.just(0.0)
        if bound == 0
        # A hundredth of the range picked by the golden-ratio sequence of a drawn integer, and a point
        # inside it, never on its ends (a float strategy favours 0.0, which would sit on them):
        # Hypothesis's generator favours a few small integers and repeats them, and the sequence
        # spreads even those evenly over the range, so every window of it is reached.
        else st.integers(0, 2**20).map(lambda k: _spread(k, whole, bound))
    )
    special = st.sampled_from(space.forget_bias_special) if space.forget_bias_special else anywhere
    if space.nonzero_forget_bias:
        anywhere = anywhere.filter(lambda b: b != 0)
        return st.integers(0, 3).flatmap(lambda k: special if k == 0 else anywhere)
    # One draw in six 0, one a telling value, four anywhere (st.one_of over the three gave far
    # fewer fresh windows); the class shrinks towards 0.
    return st.integers(0, 5).flatmap(lambda k: st.just(0.0) if k == 0 else special if k == 1 else anywhere)


@st.composite
def configs(draw: st.DrawFn, space: CaseSpace = DEFAULT_SPACE) -> LSTMConfig:
    """A valid :class:`LSTMConfig` from ``space``."""
    sizes = draw(dims(space))
    choice = _settings(space)
    loss_at, loss, reduction = draw(choice["loss_at"]), draw(choice["loss"]), draw(choice["reduction"])
    forget_bias = draw(forget_biases(space))
    cell_output, dtype, final_state = draw(choice["cell_output"]), draw(choice["dtype"]), draw(choice["final_state"])
    h0, c0 = draw(choice["h0"]), draw(choice["c0"])
    family = {name: draw(choice[name]) for name in ("peepholes", "bidirectional", "coupled")}
    if space.require_projection:
        family["proj_size"] = draw(st.integers(1, sizes["hidden_size"] - 1))
    elif space.with_projection and sizes["hidden_size"] >= 2:
        family["proj_size"] = draw(_projections(sizes["hidden_size"]))
    return LSTMConfig(
        **sizes,
        loss_at=loss_at,
        loss=loss,
        reduction="sum" if loss == UPSTREAM else reduction,  # upstream has nothing to average
        forget_bias=forget_bias,
        cell_output=cell_output,
        dtype=dtype,
        final_state=final_state,
        h0=h0,
        c0=c0,
        **family,
    )


def _mostly_first(values: tuple) -> st.SearchStrategy:
    """The first value three draws in four when there are two (random states over zero ones:
    most bugs need a nonzero state to show at T = 1); shrinks towards the first."""
    if len(values) != 2:
        return st.sampled_from(values)
    return st.integers(0, 3).map(lambda k: values[0] if k < 3 else values[1])


def _sometimes(values: tuple) -> st.SearchStrategy:
    """The second value one draw in six when there are two (a setting of the LSTM family: drawn
    sometimes, shrinking towards off); the only value otherwise."""
    if len(values) != 2:
        return st.sampled_from(values)
    return st.integers(0, 5).map(lambda k: values[1] if k == 5 else values[0])


@lru_cache(maxsize=64)
def _projections(hidden: int) -> st.SearchStrategy[int]:
    """proj_size: 0 five draws in six (shrinking towards no projection), else 1 .. H - 1."""
    return st.integers(0, 5).flatmap(lambda k: st.integers(1, hidden - 1) if k == 5 else st.just(0))


# Strategies are built once per space (and per config for lengths): Hypothesis validates
# each new strategy object on first use, which cost more than drawing the case itself.
@lru_cache(maxsize=64)
def _settings(space: CaseSpace) -> dict[str, st.SearchStrategy]:
    out = {name: st.sampled_from(getattr(space, name)) for name in CHOICES}
    out["loss"] = st.sampled_from(space.losses())
    out["h0"], out["c0"] = _mostly_first(space.h0), _mostly_first(space.c0)
    for name in ("peepholes", "bidirectional", "coupled"):
        out[name] = _sometimes(getattr(space, name))
    return out


@lru_cache(maxsize=64)
def _configs_of(space: CaseSpace) -> st.SearchStrategy[LSTMConfig]:
    return configs(space)


def lengths_for(config: LSTMConfig, space: CaseSpace = DEFAULT_SPACE) -> st.SearchStrategy[np.ndarray | None]:
    """``None`` first, else B lengths in [1, T] (shrinking towards T, i.e. no padding);
    always lengths when ``space.require_lengths``."""
    return _lengths(config.seq_len, config.batch_size, space.with_lengths, space.require_lengths)


# Keyed by the four values the strategy depends on, not by the whole config: nearly every
# drawn config is new, and a new strategy object costs more to validate than to draw from.
@lru_cache(maxsize=4096)
def _lengths(
    seq_len: int, batch_size: int, with_lengths: bool, require_lengths: bool
) -> st.SearchStrategy[np.ndarray | None]:
    if not with_lengths:
        return st.none()
    lengths = st.lists(
        st.integers(0, seq_len - 1).map(lambda k: seq_len - k), min_size=batch_size, max_size=batch_size
    ).map(lambda xs: np.asarray(xs, dtype=np.int64))
    return lengths if require_lengths else st.one_of(st.none(), lengths)


@lru_cache(maxsize=64)
def weight_scales(space: CaseSpace = DEFAULT_SPACE) -> st.SearchStrategy[float]:
    """Multiples of torch's init range (first: 1, torch's own)."""
    return st.sampled_from(space.weight_scales)


@dataclass(frozen=True, eq=False)
class Judged:
    """A drawn case and its exact answer (:func:`lstm_gradcheck.oracles.judging.exact_answer`):
    the float64 reference's loss and gradients, which the filter that admitted the case had
    to compute anyway. :meth:`context` builds the case's judging context from it, once."""

    case: Case
    exact: Answer = field(repr=False)
    _context: list = field(default_factory=list, repr=False)

    def context(self) -> JudgingContext:
        """The case's :class:`~lstm_gradcheck.oracles.judging.JudgingContext`, built on first use."""
        if not self._context:
            self._context.append(judging_context(self.case, exact=self.exact))
        return self._context[0]

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(f"Judged({self.case!r})")


@st.composite
def judged_cases(
    draw: st.DrawFn, space: Spaces = DEFAULT_SPACE, config: st.SearchStrategy[LSTMConfig] | None = None
) -> Judged:
    """A random valid :class:`Case`, ``make_case(config, seed, lengths, weight_scale)``,
    with its exact answer.

    ``space`` may be several spaces (the regions an implementation supports): each example
    comes from one of them. The arrays come from
    :func:`lstm_gradcheck.reference.case.make_case`'s parts (params,
    inputs, targets, final-state gradients, each from its own stream of the
    seed), so every case found here is reproducible from the command line:
    ``lstm-gradcheck report --seed S --weight-scale W ...``.
    """
    return _draw_judged(draw, space, config)


@st.composite
def cases(draw: st.DrawFn, space: Spaces = DEFAULT_SPACE, config: st.SearchStrategy[LSTMConfig] | None = None) -> Case:
    """The cases of :func:`judged_cases`, without their exact answers.

    The same draws, not ``judged_cases(...).map(...)``: a map adds a span, which changes
    the cases Hypothesis's mutator makes from a seed, so the recorded studies would no
    longer reproduce."""
    return _draw_judged(draw, space, config).case


def _draw_judged(draw: st.DrawFn, space: Spaces, config: st.SearchStrategy[LSTMConfig] | None) -> Judged:
    if isinstance(space, tuple):
        # Regions of what an implementation supports (support probing): one region first,
        # the simplest by its position, then the case inside it.
        space = space[draw(st.integers(0, len(space) - 1))] if len(space) > 1 else space[0]
    cfg = draw(_configs_of(space) if config is None else config)
    lengths = draw(lengths_for(cfg, space))
    case = make_case(cfg, draw(SEEDS), lengths, weight_scale=draw(weight_scales(space)))
    exact = exact_answer(case)
    # Only cases with a finite, representable exact answer: on an overflowing one a
    # correct implementation returns inf or nan, which the contract counts as failure.
    assume(unjudgeable(case, exact) is None)
    return Judged(case, exact)
