"""The worker process: it imports one implementation and answers the harness's calls over the wire.

Started by :mod:`lstm_gradcheck.isolation` as ``python -c ... FD_IN FD_OUT``; everything it
or the implementation prints goes to a file the harness reads after each call. Nothing
here judges anything: the harness checks every reply (Note [Worker processes]).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lstm_gradcheck.implementation import failure_text, result_form
from lstm_gradcheck.loading import ImplementationLoadError, Loaded, exception_text, import_spec, spec_is_file
from lstm_gradcheck.reference.verdicts import FAILED, SUPPORTED, UNSUPPORTED
from lstm_gradcheck.wire import ALLOWED_DTYPES, WireClosed, case_from_wire, read_message, write_message

__all__ = ["main", "GRADS", "PER_STEP", "LOSS", "GRAD_PREFIX"]

GRADS, PER_STEP = "grads", "per_step"
LOSS, GRAD_PREFIX = "loss", "grad:"


def main(argv: list[str]) -> None:
    """Serve the harness on the pipes named in ``argv``: one load, then calls until it closes."""
    fd_in, fd_out = int(argv[1]), int(argv[2])
    for fd in (fd_in, fd_out):
        os.set_inheritable(fd, False)  # a subprocess of the implementation must not hold the wire
    # The worker has its own session, so a Ctrl-C at the terminal never reaches it: a
    # KeyboardInterrupt here is one the implementation raised itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    header, _ = read_message(fd_in)
    if header.get("sys_path"):
        sys.path[:] = header["sys_path"]
    spec = header["spec"]
    try:
        loaded = import_spec(spec, private=False, device=header.get("device") or "cpu")
    except ImplementationLoadError as exc:
        _flush_output()
        write_message(fd_out, {"ok": False, "error": str(exc)})
        return
    _flush_output()
    write_message(fd_out, {"ok": True, "has_per_step": loaded.per_step is not None, "native": loaded.native})
    own = _own_files(spec)
    while True:
        try:
            request, arrays = read_message(fd_in)
        except WireClosed:
            return
        if request.get("op") not in (GRADS, PER_STEP):
            return
        try:
            reply, out = _serve(loaded, request, arrays, own)
        except BaseException as exc:  # the implementation broke what the worker itself uses
            reply, out = {"status": FAILED, "error": f"its worker process failed: {failure_text(exc)}"}, {}
        write_message(fd_out, reply, out)


def _serve(
    loaded: Loaded, request: Mapping[str, Any], arrays: Mapping[str, np.ndarray], own: Callable[[str], bool]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    case = case_from_wire(request["case"], arrays)
    func = loaded.grads if request["op"] == GRADS else loaded.per_step
    limit = sys.getrecursionlimit()
    start = time.perf_counter()
    result: object = None
    try:
        result = func(case.writable_copy())  # type: ignore[misc]
        reply: dict[str, Any] = {"status": SUPPORTED}
    except NotImplementedError as exc:
        reply = {"status": UNSUPPORTED, "error": exception_text(exc)}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, MemoryError...: all its failure
        reply = {"status": FAILED, "error": failure_text(exc, own)}
    finally:
        sys.setrecursionlimit(limit)  # the implementation may have lowered it; the reply needs some
    reply["seconds"] = time.perf_counter() - start
    _flush_output()
    if reply["status"] != SUPPORTED:
        return reply, {}
    try:
        out = _grads_arrays(result) if request["op"] == GRADS else _per_step_arrays(result)
    except ValueError as exc:
        return {"status": FAILED, "error": str(exc), "seconds": reply["seconds"]}, {}
    return reply, out


def _sendable(value: np.ndarray) -> np.ndarray:
    # Other real dtypes (longdouble, big-endian) travel as float64; the harness judges in float64 anyway.
    return value if np.asarray(value).dtype.newbyteorder("<").str in ALLOWED_DTYPES else value.astype(np.float64)


def _grads_arrays(result: object) -> dict[str, np.ndarray]:
    loss, grads = result_form(result)
    return {LOSS: _sendable(loss), **{GRAD_PREFIX + name: _sendable(value) for name, value in grads.items()}}


def _per_step_arrays(result: object) -> dict[str, np.ndarray]:
    if not isinstance(result, Mapping):
        raise ValueError(f"per_step returned a {type(result).__name__}; expected a dict name -> (T, *shape) array")
    out = {}
    for name, value in result.items():
        if not isinstance(name, str) or not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            raise ValueError(f"per_step returned {name!r} as a {type(value).__name__}; expected numpy arrays")
        out[GRAD_PREFIX + name] = _sendable(value)
    return out


_LIBC: list = []


def _flush_output() -> None:
    """Flush Python's and C's buffered output, so the harness reads it with this call's reply."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        if not _LIBC:
            _LIBC.append(ctypes.CDLL(None))
        _LIBC[0].fflush(None)


def _own_files(spec: str) -> Callable[[str], bool]:
    """Whether a traceback's file is the implementation's own: its file's folder, or its package."""
    target = spec.rsplit(":", 1)[0]
    root: Path | None = None
    if spec_is_file(target):
        root = Path(target).expanduser().resolve().parent
    else:
        with contextlib.suppress(Exception):
            found = importlib.util.find_spec(target.split(".")[0])
            if found is not None and found.origin:
                origin = Path(found.origin).resolve()
                root = origin.parent if origin.name == "__init__.py" else origin
    harness = Path(__file__).resolve().parent

    def own(filename: str) -> bool:
        path = Path(filename).resolve()
        return root is not None and (path == root or path.is_relative_to(root)) and not path.is_relative_to(harness)

    return own


def _exit_with_parent() -> None:
    """End this process when the harness's ends (it is then re-parented), even mid-call."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="lstm-gradcheck-watchdog", daemon=True).start()
