"""Importing an implementation from its ``--impl`` spec: what a worker process runs first.

``--impl`` names an implementation as ``package.module:function`` or
``path/to/file.py:function`` (a dotted attribute path after the colon, such as
``Model.grads``, is followed too). A file may import its siblings: its folder is first on
``sys.path`` while its code runs, and the modules it loads from there are its own
(Note [Private namespaces] in :mod:`lstm_gradcheck.namespaces`). A module is looked up from
the current directory too. Bytecode is never written meanwhile, so checking an
implementation writes nothing into its folder. What it prints at import goes to
standard error.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lstm_gradcheck.namespaces import ModuleNamespace

__all__ = ["UsageError", "ImplementationLoadError", "Loaded", "check_spec", "import_spec", "spec_target"]


class UsageError(Exception):
    """Bad command-line use: the CLI prints the message and exits 2."""

    __module__ = "lstm_gradcheck"  # public under this name


class ImplementationLoadError(UsageError):
    """The implementation cannot be imported or is not a function (exit 2)."""

    __module__ = "lstm_gradcheck"


@dataclass(frozen=True)
class Loaded:
    """An imported implementation: its ``grads`` and, if it offers one, ``grads.per_step``;
    ``native`` names a torch-native kind (Note [Torch-native implementations]), else None."""

    grads: Callable[..., object]
    per_step: Callable[..., object] | None
    native: str | None = None


def check_spec(spec: object) -> tuple[str, str]:
    """The spec's target (module or file) and attribute path; ``ImplementationLoadError`` if
    it is not of the form ``MODULE:FUNCTION`` or ``path/to/file.py:FUNCTION``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ImplementationLoadError(
            f"--impl is empty ({spec!r}): name the implementation as MODULE:FUNCTION or path/to/file.py:FUNCTION "
            '(an unset variable in a line such as --impl "$LSTM_IMPL" gives an empty one)'
        )
    if spec.count(":") < 1 or spec.rsplit(":", 1)[1] == "":
        raise ImplementationLoadError(
            f"--impl expects MODULE:FUNCTION or path/to/file.py:FUNCTION (e.g. mypkg.lstm:grads), got {spec!r}"
        )
    target, attribute = spec.rsplit(":", 1)
    if not all(part.isidentifier() for part in attribute.split(".")):
        raise ImplementationLoadError(f"--impl {spec!r}: {attribute!r} is not a Python function name")
    if not spec_is_file(target) and not all(part.isidentifier() for part in target.split(".")):
        raise ImplementationLoadError(f"--impl {spec!r}: {target!r} is not a module name or a .py file")
    return target, attribute


def spec_is_file(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def spec_target(spec: str) -> str:
    """The module or file part of a spec."""
    return spec.rsplit(":", 1)[0]


@contextlib.contextmanager
def _no_bytecode() -> Iterator[None]:
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def import_spec(spec: str, *, private: bool = True, device: str = "cpu") -> Loaded:
    """Import ``spec`` in this process (:func:`check_spec` first).

    ``private``: a file's sibling modules live in its own namespace (two implementations in
    one process each run their own); a worker process, which runs one implementation only,
    leaves them in ``sys.modules`` with the file's folder first on ``sys.path``. A torch module
    class or a torch function (Note [Torch-native implementations]) is wrapped into the
    contract's ``grads(case)``, run on ``device``."""
    target, attribute = check_spec(spec)
    namespace = None
    with _no_bytecode():
        if spec_is_file(target) and private:
            module, namespace = _import_file(spec, target)
        elif spec_is_file(target):
            module = _import_file_plainly(spec, target)
        else:
            module = _import_module(spec, target)
    func: object = module
    for part in attribute.split("."):
        try:
            func = getattr(func, part)
        except AttributeError:
            public = sorted(n for n in vars(module) if callable(getattr(module, n)) and not n.startswith("_"))
            hint = f"; it defines {', '.join(public[:8])}" if public else ""
            raise ImplementationLoadError(f"--impl {spec!r}: {target} has no function {attribute!r}{hint}") from None
    if not callable(func):
        raise ImplementationLoadError(f"--impl {spec!r}: {attribute!r} is a {type(func).__name__}, not a function")
    if _looks_torch_native(func):
        from lstm_gradcheck.oracles.torch_native import native_grads, native_kind  # noqa: PLC0415 (torch)

        kind = native_kind(func)
        if kind is not None:
            return Loaded(native_grads(func, kind, device), None, kind)
    per_step = getattr(func, "per_step", None)
    per_step = per_step if callable(per_step) else None
    if namespace is not None:
        func = namespace.wrap(func)
        per_step = None if per_step is None else namespace.wrap(per_step)
    return Loaded(func, per_step)


def _looks_torch_native(obj: object) -> bool:
    """A torch module (class or instance) or a function of three positional parameters, judged
    without importing torch (Note [Torch-native implementations] has the protocol)."""
    classes = obj.__mro__ if isinstance(obj, type) else type(obj).__mro__
    if any(c.__name__ == "Module" and c.__module__.startswith("torch") for c in classes):
        return True
    try:
        parameters = inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    required = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) >= 3


def _import_failure(spec: str, what: str, exc: BaseException) -> ImplementationLoadError:
    # The user's line, not the import machinery's; a SyntaxError names its own line.
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    where = (
        ""
        if isinstance(exc, SyntaxError) or not frames
        else f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})"
    )
    return ImplementationLoadError(f"--impl {spec!r}: importing {what} failed: {exception_text(exc)}{where}")


def exception_text(exc: BaseException) -> str:
    """``Type: message``, even for an exception whose ``__str__`` raises."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:
        message = "<its message could not be printed: its __str__ raised>"
    return f"{name}: {message}" if message else name


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
        if isinstance(exc, KeyboardInterrupt) and not os.environ.get(WORKER_ENV):
            raise
        raise _import_failure(spec, str(path), exc) from None
    return module, namespace


def _import_file_plainly(spec: str, target: str) -> types.ModuleType:
    path = Path(target).expanduser()
    if not path.is_file():
        raise ImplementationLoadError(f"--impl {spec!r}: no such file {str(path)!r}")
    sys.path.insert(0, str(path.resolve().parent))
    module_spec = importlib.util.spec_from_file_location(f"lstm_gradcheck_impl_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ImplementationLoadError(f"--impl {spec!r}: cannot load {str(path)!r} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    try:
        with contextlib.redirect_stdout(sys.stderr):
            module_spec.loader.exec_module(module)
    except BaseException as exc:
        raise _import_failure(spec, str(path), exc) from None
    return module


def _import_module(spec: str, target: str) -> types.ModuleType:
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
        if isinstance(exc, KeyboardInterrupt) and not os.environ.get(WORKER_ENV):
            raise
        raise _import_failure(spec, target, exc) from None


#: Set in a worker process's environment (Note [Worker processes] in :mod:`lstm_gradcheck.isolation`).
WORKER_ENV = "LSTM_GRADCHECK_WORKER"
