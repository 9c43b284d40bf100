"""An implementation of the contract's ``grads(case)``, how it is called, and what it returned.

Every implementation the user names runs in a worker process of its own
(Note [Worker processes] in :mod:`lstm_gradcheck.isolation`); only the harness's own code
(its reference and the registered derivation variants) and an implementation the user
explicitly asks to run in process (``--in-process``, ``in_process=True``) run here.
Whatever runs, :meth:`Implementation.call` never raises: a crash, an exit, a hang or a
malformed return is an :class:`ImplOutcome` with status "failed" and the reason.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_gradcheck import streams
from lstm_gradcheck.loading import ImplementationLoadError, UsageError, exception_text, import_spec
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import gradient_shapes, model_gradient_names
from lstm_gradcheck.reference.lstm import backward, forward, per_step_contributions
from lstm_gradcheck.reference.lstm import grads as reference_grads
from lstm_gradcheck.reference.verdicts import FAILED, SUPPORTED, UNSUPPORTED

__all__ = [
    "UsageError",
    "ImplementationLoadError",
    "ImplOutcome",
    "Implementation",
    "InProcess",
    "HARNESS",
    "IN_PROCESS",
    "WORKER",
    "reference_implementation",
    "in_process_implementation",
    "call_implementation",
    "result_form",
    "validate_result",
    "check_per_step",
    "failure_text",
]

OK = SUPPORTED  # the implementation's status when it returned a valid result
#: Where an implementation runs: a worker process of its own, this process because the user
#: asked for it, or this process because it is the harness's own code.
WORKER, IN_PROCESS, HARNESS = "worker", "in process", "harness"


@dataclass(frozen=True)
class ImplOutcome:
    """One call of an implementation on one case.

    ``status`` is "ok", "unsupported" (it raised NotImplementedError) or "failed" (it raised,
    exited, crashed, hung, or returned something the contract does not allow; ``error`` says
    what; ``timed_out`` if it hung; ``lost_worker`` if its worker process hung or ended and is
    restarted for the next call). ``output`` is what it printed during the call (stdout and
    stderr, shortened)."""

    status: str
    seconds: float
    loss: float | None = None
    grads: Mapping[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    output: str = ""
    timed_out: bool = False
    lost_worker: bool = False

    @property
    def printed(self) -> bool:
        return bool(self.output)


class Implementation(ABC):
    """What the harness checks: a ``grads(case)`` somewhere, its name for reports, where it
    runs (``isolation``) and whether it offers per-step contributions (``per_step(case) ->
    name -> (T, *shape)``). ``exact`` is True for the harness's reference alone."""

    name: str
    exact: bool = False
    isolation: str = HARNESS
    #: A torch-native kind (Note [Torch-native implementations]), else None.
    native: str | None = None
    #: Where a torch-native implementation runs ("cpu" or "cuda").
    device: str = "cpu"

    @property
    @abstractmethod
    def has_per_step(self) -> bool: ...

    @abstractmethod
    def call(self, case: Case) -> ImplOutcome:
        """One call on ``case``; never raises (but KeyboardInterrupt)."""

    @abstractmethod
    def step_contributions(self, case: Case) -> dict[str, np.ndarray] | None:
        """``per_step(case)`` checked against the case's shapes, or None (not offered, failed, malformed)."""


@dataclass(frozen=True)
class InProcess(Implementation):
    """A ``grads(case)`` run in this process, and its ``per_step`` if it has one.

    ``isolation`` is :data:`HARNESS` for the harness's own code and :data:`IN_PROCESS` for a
    user's implementation run here because the user asked for it. ``exact`` is True for the
    harness's reference alone: on a float64 case its answer *is* the exact answer the judging
    context needs (Note [Judging context] in :mod:`lstm_gradcheck.oracles.judging`)."""

    name: str
    grads: Callable[[Case], object]
    per_step: Callable[[Case], Mapping[str, np.ndarray]] | None = None
    exact: bool = False
    isolation: str = HARNESS
    native: str | None = None

    @property
    def has_per_step(self) -> bool:
        return self.per_step is not None

    def call(self, case: Case) -> ImplOutcome:
        """Call it on a private writable copy of ``case``; never raises (but KeyboardInterrupt).
        ``sys.exit`` inside it is its failure, not the harness's exit."""
        captured = _Captured()
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(captured):
                result = self.grads(case.writable_copy())
        except NotImplementedError as exc:
            return ImplOutcome(
                UNSUPPORTED, time.perf_counter() - start, error=exception_text(exc), output=captured.text
            )
        except (Exception, SystemExit) as exc:
            return ImplOutcome(FAILED, time.perf_counter() - start, error=failure_text(exc), output=captured.text)
        seconds = time.perf_counter() - start
        try:
            loss, grads = validate_result(case, result)
        except ValueError as exc:
            return ImplOutcome(FAILED, seconds, error=str(exc), output=captured.text)
        return ImplOutcome(OK, seconds, loss, grads, output=captured.text)

    def step_contributions(self, case: Case) -> dict[str, np.ndarray] | None:
        if self.per_step is None:
            return None
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return check_per_step(case, self.per_step(case.writable_copy()))
        except Exception:
            return None


class _Captured:
    """Stands in for stdout while in-process code runs: forwards to stderr and keeps what it saw."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        if text:
            self.parts.append(text)
            streams.write(sys.stderr, text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _reference_per_step(case: Case) -> Mapping[str, np.ndarray]:
    _, cache = forward(case)
    return per_step_contributions(cache, backward(cache))


def reference_implementation() -> InProcess:
    """The harness's own NumPy reference, with its per-step contributions."""
    return InProcess("reference", reference_grads, _reference_per_step, exact=True)


def in_process_implementation(impl: Callable | str, device: str = "cpu") -> InProcess:
    """A user's implementation run in this process, not isolated, because the user asked for it."""
    if isinstance(impl, str):
        loaded = import_spec(impl, device=device)
        return InProcess(impl, loaded.grads, loaded.per_step, isolation=IN_PROCESS, native=loaded.native)
    if not callable(impl):
        raise TypeError(f"expected a grads(case) function or a 'module:function' spec, got {impl!r}")
    per_step = getattr(impl, "per_step", None)
    return InProcess(callable_name(impl), impl, per_step if callable(per_step) else None, isolation=IN_PROCESS)


def callable_name(func: Callable) -> str:
    return f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"


def call_implementation(impl: Implementation, case: Case) -> ImplOutcome:
    """``impl.call(case)``: the outcome of one call; never raises (but KeyboardInterrupt)."""
    return impl.call(case)


def failure_text(exc: BaseException, files: Callable[[str], bool] | None = None) -> str:
    """``Type: message (raised at FILE, line N)``, the line being the last frame in the
    implementation's own files (``files(path)``), else the last frame of all."""
    text = exception_text(exc)
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    own = [f for f in frames if files is not None and files(f.filename)]
    last = own[-1] if own else (frames[-1] if frames else None)
    if last is not None:
        text += f" (raised at {Path(last.filename).name}, line {last.lineno}, in {last.name})"
    return text


def result_form(result: object) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The return value's form: a tuple (loss, {name: numpy array}); ``ValueError`` says what
    else it is. The loss comes back as a 0-d real array, the arrays as they were."""
    if not isinstance(result, tuple) or len(result) != 2:
        got = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (list, tuple)) else "")
        raise ValueError(f"returned {got}; the contract asks for a tuple (loss, {{name: gradient}})")
    loss, grads = result
    try:
        loss_value = np.asarray(loss)
        if loss_value.shape != () or loss_value.dtype.kind not in "fiu":
            raise TypeError
    except Exception:
        raise ValueError(f"returned loss {_short_repr(loss)}; expected a float or a 0-d real array") from None
    if not isinstance(grads, Mapping):
        raise ValueError(f"returned {type(grads).__name__} as the gradients; expected a dict name -> numpy array")
    out: dict[str, np.ndarray] = {}
    for name, value in grads.items():
        if not isinstance(name, str):
            raise ValueError(f"returned a gradient keyed by {_short_repr(name)}; keys are names such as 'weight_ih_l0'")
        if not isinstance(value, np.ndarray):
            hint = " (convert with .detach().numpy())" if type(value).__module__.startswith("torch") else ""
            raise ValueError(f"gradient {name!r} is a {type(value).__name__}, expected a numpy.ndarray{hint}")
        if value.dtype.kind not in "fiu":
            raise ValueError(f"gradient {name!r} has dtype {value.dtype}, expected a real floating dtype")
        out[name] = value
    return loss_value, out


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def validate_result(case: Case, result: object) -> tuple[float, dict[str, np.ndarray]]:
    """Check a return value against the contract; ``ValueError`` says what is wrong."""
    loss_value, grads = result_form(result)
    loss_float = float(loss_value)
    if not math.isfinite(loss_float):
        raise ValueError(f"returned a non-finite loss ({loss_float})")
    shapes = gradient_shapes(case.config)
    known = model_gradient_names(case.config)
    out: dict[str, np.ndarray] = {}
    for name, value in grads.items():
        if name not in shapes:
            raise ValueError(f"returned a gradient for unknown key {name!r}; the case's names are {', '.join(known)}")
        if value.shape != shapes[name]:
            raise ValueError(f"gradient {name!r} has shape {value.shape}, expected {shapes[name]}")
        if not np.all(np.isfinite(value)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise ValueError(f"gradient {name!r} has a non-finite value {value[bad]} at index {bad}")
        out[name] = np.asarray(value, dtype=np.float64)
    return loss_float, out


def check_per_step(case: Case, contributions: object) -> dict[str, np.ndarray] | None:
    """Per-step contributions ``{name: (T, *shape)}`` as float64, or None if malformed."""
    if not isinstance(contributions, Mapping):
        return None
    shapes = gradient_shapes(case.config)
    out = {}
    for name, value in contributions.items():
        if name not in shapes or not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            return None
        if value.shape != (case.config.seq_len, *shapes[name]) or not np.all(np.isfinite(value)):
            return None
        out[name] = np.asarray(value, dtype=np.float64)
    return out
