"""Loading and calling an implementation of the contract's ``grads(case)``.

``--impl`` names an implementation as ``package.module:function`` or
``path/to/file.py:function``. A file may import its siblings: its folder is
first on ``sys.path`` while its code runs, and the modules it loads from
there are its own (Note [Private namespaces] in
:mod:`lstm_gradcheck.namespaces`). A module is looked up from the current
directory too. What an implementation prints goes to standard error.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import math
import os
import sys
import time
import traceback
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_gradcheck.namespaces import ModuleNamespace
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
    "load_implementation",
    "as_implementation",
    "reference_implementation",
    "call_implementation",
    "validate_result",
]

OK = SUPPORTED  # the implementation's status when it returned a valid result


class UsageError(Exception):
    """Bad command-line use: the CLI prints the message and exits 2."""

    __module__ = "lstm_gradcheck"  # public under this name


class ImplementationLoadError(UsageError):
    """The implementation cannot be imported or is not a function (exit 2)."""

    __module__ = "lstm_gradcheck"


@dataclass(frozen=True)
class Implementation:
    """A callable ``grads(case)`` plus its name for reports, and, if it offers
    them, per-step contributions (``per_step(case) -> name -> (T, *shape)``).

    ``exact`` is True for the harness's own reference alone: on a float64 case its
    answer *is* the exact answer the judging context needs, so that is not computed
    a second time (Note [Judging context] in :mod:`lstm_gradcheck.oracles.judging`)."""

    name: str
    grads: Callable[[Case], object]
    per_step: Callable[[Case], Mapping[str, np.ndarray]] | None = None
    exact: bool = False


@dataclass(frozen=True)
class ImplOutcome:
    """One call of an implementation on one case.

    ``status`` is "ok", "unsupported" (it raised NotImplementedError) or
    "failed" (it raised, or returned something the contract does not allow;
    ``error`` says what). ``printed`` is True if it wrote to stdout (redirected).
    """

    status: str
    seconds: float
    loss: float | None = None
    grads: Mapping[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    printed: bool = False


def _reference_per_step(case: Case) -> Mapping[str, np.ndarray]:
    _, cache = forward(case)
    return per_step_contributions(cache, backward(cache))


def reference_implementation() -> Implementation:
    """The harness's own NumPy reference, with its per-step contributions."""
    return Implementation("reference", reference_grads, _reference_per_step, exact=True)


def as_implementation(impl: Callable | str | Implementation) -> Implementation:
    """Accept a ``grads`` function, an ``--impl`` spec string, or an :class:`Implementation`."""
    if isinstance(impl, Implementation):
        return impl
    if isinstance(impl, str):
        return load_implementation(impl)
    if not callable(impl):
        raise TypeError(f"expected a grads(case) function or a 'module:function' spec, got {impl!r}")
    name = f"{getattr(impl, '__module__', '?')}:{getattr(impl, '__qualname__', repr(impl))}"
    per_step = getattr(impl, "per_step", None)
    return Implementation(name, impl, per_step if callable(per_step) else None)


def load_implementation(spec: str) -> Implementation:
    """Import ``spec`` (``package.module:function`` or ``path/to/file.py:function``)."""
    if not isinstance(spec, str) or spec.count(":") < 1 or spec.rsplit(":", 1)[1] == "":
        raise ImplementationLoadError(
            f"--impl expects MODULE:FUNCTION or path/to/file.py:FUNCTION (e.g. mypkg.lstm:grads), got {spec!r}"
        )
    target, func_name = spec.rsplit(":", 1)
    if not func_name.isidentifier():
        raise ImplementationLoadError(f"--impl {spec!r}: {func_name!r} is not a Python function name")
    namespace = None
    if target.endswith(".py") or os.sep in target or "/" in target:
        module, namespace = _import_file(spec, target)
    else:
        module = _import_module(spec, target)
    try:
        func = getattr(module, func_name)
    except AttributeError:
        public = sorted(n for n in vars(module) if callable(getattr(module, n)) and not n.startswith("_"))
        hint = f"; it defines {', '.join(public[:8])}" if public else ""
        raise ImplementationLoadError(f"--impl {spec!r}: {target} has no function {func_name!r}{hint}") from None
    if not callable(func):
        raise ImplementationLoadError(f"--impl {spec!r}: {func_name!r} is a {type(func).__name__}, not a function")
    per_step = getattr(func, "per_step", None)
    per_step = per_step if callable(per_step) else None
    if namespace is not None:
        func = namespace.wrap(func)
        per_step = None if per_step is None else namespace.wrap(per_step)
    return Implementation(spec, func, per_step)


def _import_failure(spec: str, what: str, exc: BaseException) -> ImplementationLoadError:
    # The user's line, not the import machinery's; a SyntaxError names its own line.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    where = (
        ""
        if isinstance(exc, SyntaxError) or not frames
        else f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})"
    )
    return ImplementationLoadError(f"--impl {spec!r}: importing {what} failed: {type(exc).__name__}: {exc}{where}")


def _import_file(spec: str, target: str) -> tuple[types.ModuleType, ModuleNamespace]:
    path = Path(target).expanduser()
    if not path.is_file():
        raise ImplementationLoadError(f"--impl {spec!r}: no such file {str(path)!r}")
    namespace = ModuleNamespace(path.parent)
    # One name per file, so two adapter.py files in two folders are two modules.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"lstm_gradcheck_impl_{digest}_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImplementationLoadError(f"--impl {spec!r}: cannot load {str(path)!r} as Python")
    module = importlib.util.module_from_spec(module_spec)
    try:
        with namespace.active(), contextlib.redirect_stdout(sys.stderr):
            sys.modules[name] = module  # dataclasses look their module up while a class is built
            module_spec.loader.exec_module(module)
    except BaseException as exc:
        namespace.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(spec, str(path), exc) from None
    return module, namespace


def _import_module(spec: str, target: str):
    if not all(part.isidentifier() for part in target.split(".")):
        raise ImplementationLoadError(f"--impl {spec!r}: {target!r} is not a module name or a .py file")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)  # appended, so the harness's own packages are never shadowed
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise ImplementationLoadError(
                f"--impl {spec!r}: no module named {exc.name!r} (run from the folder that contains it, "
                "install it, or pass a path/to/file.py:function)"
            ) from None
        raise _import_failure(spec, target, exc) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(spec, target, exc) from None


class _Tee:
    """Forwards writes to stderr and remembers whether anything was written."""

    def __init__(self) -> None:
        self.wrote = False

    def write(self, text: str) -> int:
        if text:
            self.wrote = True
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def call_implementation(impl: Implementation, case: Case) -> ImplOutcome:
    """Call ``impl`` on a private writable copy of ``case``; never raises (but KeyboardInterrupt)."""
    tee = _Tee()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(tee):
            result = impl.grads(case.writable_copy())
    except NotImplementedError as exc:
        return ImplOutcome(UNSUPPORTED, time.perf_counter() - start, error=_exc_text(exc), printed=tee.wrote)
    except Exception as exc:
        return ImplOutcome(FAILED, time.perf_counter() - start, error=_exc_text(exc, with_line=True), printed=tee.wrote)
    seconds = time.perf_counter() - start
    try:
        loss, grads = validate_result(case, result)
    except ValueError as exc:
        return ImplOutcome(FAILED, seconds, error=str(exc), printed=tee.wrote)
    return ImplOutcome(OK, seconds, loss, grads, printed=tee.wrote)


def _exc_text(exc: BaseException, with_line: bool = False) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if with_line and exc.__traceback__ is not None:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        text += f" (raised at {Path(last.filename).name}, line {last.lineno})"
    return text


def validate_result(case: Case, result: object) -> tuple[float, dict[str, np.ndarray]]:
    """Check a return value against the contract; ``ValueError`` says what is wrong."""
    if not isinstance(result, tuple) or len(result) != 2:
        got = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (list, tuple)) else "")
        raise ValueError(f"returned {got}; the contract asks for a tuple (loss, {{name: gradient}})")
    loss, grads = result
    try:
        loss_value = np.asarray(loss)
        if loss_value.shape != () or loss_value.dtype.kind not in "fiu":
            raise TypeError
        loss_float = float(loss_value)
    except (TypeError, ValueError):
        raise ValueError(f"returned loss {loss!r}; expected a float or a 0-d real array") from None
    if not math.isfinite(loss_float):
        raise ValueError(f"returned a non-finite loss ({loss_float})")
    if not isinstance(grads, Mapping):
        raise ValueError(f"returned {type(grads).__name__} as the gradients; expected a dict name -> numpy array")
    shapes = gradient_shapes(case.config)
    known = model_gradient_names(case.config)
    out: dict[str, np.ndarray] = {}
    for name, value in grads.items():
        if name not in shapes:
            raise ValueError(f"returned a gradient for unknown key {name!r}; the case's names are {', '.join(known)}")
        if not isinstance(value, np.ndarray):
            hint = " (convert with .detach().numpy())" if type(value).__module__.startswith("torch") else ""
            raise ValueError(f"gradient {name!r} is a {type(value).__name__}, expected a numpy.ndarray{hint}")
        if value.shape != shapes[name]:
            raise ValueError(f"gradient {name!r} has shape {value.shape}, expected {shapes[name]}")
        if value.dtype.kind not in "fiu":
            raise ValueError(f"gradient {name!r} has dtype {value.dtype}, expected a real floating dtype")
        if not np.all(np.isfinite(value)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise ValueError(f"gradient {name!r} has a non-finite value {value[bad]} at index {bad}")
        out[name] = np.asarray(value, dtype=np.float64)
    return loss_float, out
