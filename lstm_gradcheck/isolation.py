"""Checked code runs in a worker process of its own, never in the harness's.

Note [Worker processes]
-----------------------
Each implementation gets one worker (a fresh ``python``, its own session), reused across
calls and restarted after it dies. Cases go out and results come back over two pipes in a
pickle-free format (Note [Wire format]); the worker's stdout and stderr go to a file read
after each call, so nothing it prints reaches the harness's stdout. A call that raises,
exits, is killed, hangs past its timeout or replies nonsense is that implementation's
failure on that case. The harness that judges is out of its reach: it cannot patch it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_gradcheck import streams
from lstm_gradcheck.implementation import (
    FAILED,
    IN_PROCESS,
    OK,
    UNSUPPORTED,
    WORKER,
    Implementation,
    ImplOutcome,
    UsageError,
    callable_name,
    check_per_step,
    in_process_implementation,
    validate_result,
)
from lstm_gradcheck.loading import WORKER_ENV, ImplementationLoadError, check_spec, spec_is_file
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import gradient_shapes
from lstm_gradcheck.wire import WireClosed, WireError, WireTimeout, case_to_wire, read_message, write_message
from lstm_gradcheck.worker import GRAD_PREFIX, GRADS, LOSS, PER_STEP

__all__ = [
    "DEFAULT_TIMEOUT",
    "Isolated",
    "load_implementation",
    "as_implementation",
    "close_workers",
    "isolation_note",
]

#: Seconds one call of an implementation may take before it counts as hung.
DEFAULT_TIMEOUT = 60.0
#: Its import may take at least this long, whatever the call's timeout (torch alone takes seconds).
IMPORT_TIMEOUT = 60.0
#: Output kept per call for reports; the rest is counted.
OUTPUT_KEPT = 16_384
_BOOT = "import sys; sys.path.pop(0); from lstm_gradcheck.worker import main; main(sys.argv)"


@dataclass(frozen=True)
class Source:
    """What a worker imports: a spec, the ``sys.path`` it needs (for a function object) and the folder it runs in."""

    spec: str
    sys_path: tuple[str, ...] | None
    cwd: str
    device: str = "cpu"


@dataclass(frozen=True)
class CallFailure:
    """Why a call got no reply: the process ended, hung (``timed_out``) or could not start."""

    reason: str
    timed_out: bool = False


class Worker:
    """One worker process for one :class:`Source`: started on demand, restarted after it ends."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.process: subprocess.Popen | None = None
        self.has_per_step = False
        self.native: str | None = None
        self.starts = 0
        self._lock = threading.Lock()
        self._request = self._reply = -1
        self._output = self._open_output()
        self._read = 0

    @staticmethod
    def _open_output() -> int:
        fd, path = tempfile.mkstemp(prefix="lstm-gradcheck-worker-", suffix=".out")
        os.unlink(path)
        # Appending, so the file can be emptied between calls while the worker keeps writing.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        return fd

    # ------------------------------------------------------------------ lifetime

    def start(self, timeout: float) -> str | None:
        """Start the process and import the implementation; the reason it failed, or None."""
        timeout = max(timeout, IMPORT_TIMEOUT)
        self.kill()
        request_read, self._request = os.pipe()
        self._reply, reply_write = os.pipe()
        env = {**os.environ, WORKER_ENV: "1", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(request_read), str(reply_write)],
                pass_fds=(request_read, reply_write), stdin=subprocess.DEVNULL, stdout=self._output,
                stderr=self._output, cwd=self.source.cwd, env=env, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(request_read)
            os.close(reply_write)
        os.set_blocking(self._request, False)
        self.starts += 1
        deadline = time.monotonic() + timeout
        header = {
            "op": "load",
            "spec": self.source.spec,
            "sys_path": self.source.sys_path,
            "device": self.source.device,
        }
        try:
            write_message(self._request, header, deadline=deadline)
            reply, _ = read_message(self._reply, deadline, max_bytes=0)
        except WireTimeout:
            self.kill()
            return f"importing it took longer than {timeout:g} s (the larger of --timeout and {IMPORT_TIMEOUT:g})"
        except WireError as exc:
            return f"importing it ended its process ({self._ending(exc)}){self._tail()}"
        if reply.get("ok") is not True:
            self.kill()
            return str(reply.get("error", "it could not be imported"))
        self.has_per_step = bool(reply.get("has_per_step"))
        self.native = reply.get("native") if isinstance(reply.get("native"), str) else None
        self.drain_output()
        return None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Stop the process (and everything it started) at once."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.process.wait(timeout=10)
        for fd in (self._request, self._reply):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._request = self._reply = -1

    def close(self) -> None:
        self.kill()
        self.process = None
        with contextlib.suppress(OSError):
            os.close(self._output)

    def _ending(self, exc: WireError) -> str:
        """How the process ended (or why its reply was unreadable)."""
        if not isinstance(exc, WireClosed):
            self.kill()
            return f"it sent a reply the harness cannot read: {exc}; did it write into the harness's pipe?"
        code = None
        with contextlib.suppress(Exception):
            code = self.process.wait(timeout=5) if self.process is not None else None
        self.kill()
        if code is None:
            return "it closed the harness's pipe"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            why = {"SIGKILL": " (out of memory?)", "SIGSEGV": " (a crash in native code)"}.get(name, "")
            return f"it was killed by signal {name}{why}"
        return f"it exited with status {code}: os._exit, or an exit from native code"

    # ------------------------------------------------------------------ calls

    def call(self, op: str, case: Case, timeout: float) -> tuple[dict, dict[str, np.ndarray], str] | CallFailure:
        """Ask the worker to run ``op`` on ``case``: (reply, arrays, output), or why there is none."""
        with self._lock:
            if not self.alive:
                reason = self.start(timeout)
                if reason is not None:
                    return CallFailure(f"its worker process could not be restarted: {reason}")
            header, arrays = case_to_wire(case)
            deadline = time.monotonic() + timeout
            try:
                write_message(self._request, {"op": op, "case": header}, arrays, deadline)
                reply, values = read_message(self._reply, deadline, _reply_bytes(case, op))
            except WireTimeout:
                self.kill()
                text = f"it did not return within {timeout:g} s (--timeout); its process was stopped"
                return CallFailure(text + self._tail(), timed_out=True)
            except WireError as exc:
                return CallFailure(f"its process ended during the call: {self._ending(exc)}{self._tail()}")
            return reply, values, self.drain_output()

    def drain_output(self) -> str:
        """What the worker printed since the last call, forwarded to stderr (shortened when kept)."""
        size = os.fstat(self._output).st_size
        if size <= self._read:
            return ""
        new = size - self._read
        data = os.pread(self._output, min(new, OUTPUT_KEPT), self._read)
        self._read = size
        if size > 8 * OUTPUT_KEPT:
            os.ftruncate(self._output, 0)
            self._read = 0
        text = data.decode("utf-8", errors="replace")
        if new > OUTPUT_KEPT:
            text += f"\n[... {new - OUTPUT_KEPT} more bytes of output]\n"
        streams.write(sys.stderr, text)
        return text

    def _tail(self) -> str:
        text = self.drain_output().strip()
        return f"; its last output: {text[-300:]}" if text else ""


def _reply_bytes(case: Case, op: str) -> int:
    """The most a reply may declare: twice the float64 gradients (times T for per-step), plus slack."""
    size = sum(math.prod(shape) for shape in gradient_shapes(case.config).values())
    return 2 * 8 * size * (case.config.seq_len if op == PER_STEP else 1) + 2**16


@dataclass(frozen=True, eq=False)
class Isolated(Implementation):
    """An implementation in a worker process (Note [Worker processes])."""

    name: str
    worker: Worker = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    exact: bool = False
    isolation: str = WORKER

    @property
    def has_per_step(self) -> bool:
        return self.worker.has_per_step

    @property
    def native(self) -> str | None:
        return self.worker.native

    @property
    def device(self) -> str:
        return self.worker.source.device

    def call(self, case: Case) -> ImplOutcome:
        start = time.perf_counter()
        answer = self.worker.call(GRADS, case, self.timeout)
        if isinstance(answer, CallFailure):
            seconds = time.perf_counter() - start
            return ImplOutcome(FAILED, seconds, error=answer.reason, timed_out=answer.timed_out, lost_worker=True)
        reply, arrays, output = answer
        status, seconds = reply.get("status"), reply.get("seconds")
        seconds = float(seconds) if isinstance(seconds, (int, float)) else time.perf_counter() - start
        error = reply.get("error") if isinstance(reply.get("error"), str) else None
        if status in (UNSUPPORTED, FAILED):
            return ImplOutcome(status, seconds, error=error or status, output=output)
        if status != OK or LOSS not in arrays:
            return ImplOutcome(FAILED, seconds, error=f"its worker sent a reply without a result ({status!r})")
        grads = {name[len(GRAD_PREFIX) :]: a for name, a in arrays.items() if name.startswith(GRAD_PREFIX)}
        try:
            loss, checked = validate_result(case, (arrays[LOSS], grads))
        except ValueError as exc:
            return ImplOutcome(FAILED, seconds, error=str(exc), output=output)
        return ImplOutcome(OK, seconds, loss, checked, output=output)

    def step_contributions(self, case: Case) -> dict[str, np.ndarray] | None:
        if not self.has_per_step:
            return None
        answer = self.worker.call(PER_STEP, case, self.timeout)
        if isinstance(answer, CallFailure) or answer[0].get("status") != OK:
            return None
        arrays = answer[1]
        return check_per_step(case, {n[len(GRAD_PREFIX) :]: a for n, a in arrays.items() if n.startswith(GRAD_PREFIX)})


# ----------------------------------------------------------------------------- the pool

_WORKERS: dict[Source, tuple[tuple, Worker]] = {}
_EVERY_WORKER: list[Worker] = []
_POOL_LOCK = threading.Lock()


def _worker_for(source: Source, timeout: float, *, fresh: bool) -> Worker:
    """The worker of ``source``, started (its import checked) on first use. It is reused while
    the implementation's files are unchanged, unless ``fresh`` (a new import, as a new command
    line would make)."""
    stamp = _files_stamp(source)
    with _POOL_LOCK:
        known = _WORKERS.get(source)
        if known is not None and known[0] == stamp and not fresh:
            worker = known[1]
        else:
            if known is not None:
                known[1].kill()  # an Isolated still holding it restarts it if called again
            worker = Worker(source)
            _EVERY_WORKER.append(worker)
            _WORKERS[source] = (stamp, worker)
        if not worker.alive:
            reason = worker.start(timeout)
            if reason is not None:
                del _WORKERS[source]
                prefix = "" if reason.startswith("--impl") else f"--impl {source.spec!r}: "
                raise ImplementationLoadError(prefix + reason)
        return worker


def _files_stamp(source: Source) -> tuple:
    """When the implementation's own Python files last changed (its file's folder, or its top package)."""
    target = source.spec.rsplit(":", 1)[0]
    if spec_is_file(target):
        folder = Path(source.cwd, target).expanduser().parent
    else:
        found = None
        with contextlib.suppress(Exception):
            found = importlib.util.find_spec(target.split(".")[0])
        if found is None or not found.origin or not found.origin.endswith(".py"):
            return ()
        origin = Path(found.origin)
        folder = origin.parent if origin.name == "__init__.py" else origin
    files = [folder] if folder.is_file() else sorted(folder.glob("*.py"))
    stamps = []
    for path in files[:1000]:
        with contextlib.suppress(OSError):
            stamps.append((str(path), path.stat().st_mtime_ns))
    return tuple(stamps)


@atexit.register
def close_workers() -> None:
    """Stop every worker process (at exit, and for tests)."""
    with _POOL_LOCK:
        for worker in _EVERY_WORKER:
            worker.close()
        _EVERY_WORKER.clear()
        _WORKERS.clear()


def _refuse_inside_a_worker() -> None:
    if os.environ.get(WORKER_ENV):
        raise UsageError(
            "lstm-gradcheck was asked to check an implementation from inside an implementation's worker process: "
            "a script that defines grads and checks it must guard the check with if __name__ == '__main__':"
        )


def load_implementation(
    spec: str, *, in_process: bool = False, timeout: float = DEFAULT_TIMEOUT, fresh: bool = True, device: str = "cpu"
) -> Implementation:
    """The implementation ``spec`` names (``package.module:function`` or ``path/to/file.py:function``),
    in a worker process, or in this one with ``in_process`` (not isolated: the user's choice).
    ``fresh`` imports it anew in a new worker; otherwise a running worker of the same spec is
    reused while its files are unchanged. ``device`` is where a torch-native implementation
    runs (Note [Torch-native implementations]).

    Raises:
        ImplementationLoadError: a malformed or empty spec, or one that cannot be imported.
    """
    check_spec(spec)
    if in_process:
        return in_process_implementation(spec, device=device)
    _refuse_inside_a_worker()
    worker = _worker_for(Source(spec, None, os.getcwd(), device), timeout, fresh=fresh)
    return Isolated(spec, worker, timeout)


def as_implementation(
    impl: Callable | str | Implementation, *, in_process: bool = False, timeout: float = DEFAULT_TIMEOUT
) -> Implementation:
    """Accept a ``grads`` function, an ``--impl`` spec string, or an :class:`Implementation`.

    A function runs in a worker that imports it by name, so it must be reachable as
    ``module.function`` (defined at a module's top level); ``in_process=True`` runs any
    function here instead, not isolated."""
    if isinstance(impl, Implementation):
        return impl
    if isinstance(impl, str):
        return load_implementation(impl, in_process=in_process, timeout=timeout, fresh=False)
    if not callable(impl):
        raise TypeError(f"expected a grads(case) function or a 'module:function' spec, got {impl!r}")
    if in_process:
        return in_process_implementation(impl)
    _refuse_inside_a_worker()
    spec = _spec_of(impl)
    worker = _worker_for(Source(spec, tuple(sys.path), os.getcwd()), timeout, fresh=False)
    return Isolated(callable_name(impl), worker, timeout)


def _spec_of(func: Callable) -> str:
    """The spec a fresh process imports ``func`` by; ``UsageError`` if there is none."""
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    found: object = module
    for part in (qualname or "<>").split("."):
        found = getattr(found, part, None)
    if module is None or found is not func:
        where = (
            "inside a function (a closure or a lambda)"
            if qualname and "<" in qualname
            else "not at a module's top level"
        )
        raise UsageError(
            f"{callable_name(func)} is {where}, so a worker process cannot import it. Define grads at the top "
            "level of a module (or pass it as 'module:function' or 'path/to/file.py:function'), or pass "
            "in_process=True to run it in the harness's own process, not isolated"
        )
    file = getattr(module, "__file__", None)
    if module_name == "__main__" or (file and module_name.startswith("lstm_gradcheck_impl_")):
        return f"{file}:{qualname}"
    return f"{module_name}:{qualname}"


def isolation_note(isolation: str) -> str | None:
    """The verdict's word on an implementation that ran unisolated at the user's request, else None."""
    if isolation != IN_PROCESS:
        return None
    return (
        "the implementation ran in the harness's own process, as asked (--in-process / in_process=True): "
        "it was not isolated, so an exit, a crash or a change it made to the harness could change this verdict"
    )
