"""The wire between the harness and an implementation's worker process: JSON and raw arrays.

Note [Wire format]
------------------
A message is ``b"LGC1"``, the header's length (4 bytes, little-endian), a UTF-8 JSON header
and then each array's raw bytes, in the order the header's ``"arrays"`` list names them with
their dtype and shape. No pickle crosses the wire: the worker runs code nobody vetted, and
unpickling its reply would run whatever it chose in the harness. The reader accepts only
plain numeric dtypes, checks every size before it allocates, and has a deadline.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig

__all__ = [
    "WireError",
    "WireClosed",
    "WireTimeout",
    "write_message",
    "read_message",
    "ALLOWED_DTYPES",
    "case_to_wire",
    "case_from_wire",
]

MAGIC = b"LGC1"
_LENGTH = struct.Struct("<I")
#: The only dtypes an array on the wire may have (little-endian, no objects, no records).
ALLOWED_DTYPES = frozenset(
    np.dtype(t).str for t in ("<f2", "<f4", "<f8", "<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", "|b1")
)
_MAX_HEADER = 16 * 2**20
_CHUNK = 1 << 20


class WireError(Exception):
    """A malformed message (the other side sent something that is not this format)."""


class WireClosed(WireError):
    """The other side closed the pipe (its process ended) before a whole message arrived."""


class WireTimeout(WireError):
    """No whole message arrived before the deadline."""


def _encode(array: np.ndarray) -> tuple[dict[str, Any], memoryview]:
    a = array if array.flags.c_contiguous else array.copy(order="C")  # ascontiguousarray makes 0-d 1-d
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    if a.dtype.str not in ALLOWED_DTYPES:
        raise TypeError(f"cannot send an array of dtype {a.dtype} over the wire")
    return {"dtype": a.dtype.str, "shape": list(a.shape)}, memoryview(a).cast("B")


def write_message(
    fd: int, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None, deadline: float | None = None
) -> None:
    """Send one message: ``header`` (JSON-able) and ``arrays`` by name (Note [Wire format]).

    With a ``deadline`` (a ``time.monotonic()`` value) the fd must be non-blocking and
    :class:`WireTimeout` is raised if the other side does not take the bytes in time."""
    specs, buffers = [], []
    for name, array in (arrays or {}).items():
        spec, buffer = _encode(np.asarray(array))
        specs.append({"name": name, **spec})
        buffers.append(buffer)
    head = json.dumps({**header, "arrays": specs}, allow_nan=False).encode()
    _write_all(fd, MAGIC + _LENGTH.pack(len(head)) + head, deadline)
    for buffer in buffers:
        _write_all(fd, buffer, deadline)


def _write_all(fd: int, data: bytes | memoryview, deadline: float | None) -> None:
    view = memoryview(data)
    while view:
        if deadline is not None:
            _wait(fd, deadline, write=True)
        try:
            written = os.write(fd, view[:_CHUNK])
        except BlockingIOError:
            continue
        except BrokenPipeError:
            raise WireClosed("the other side closed the pipe") from None
        view = view[written:]


def _wait(fd: int, deadline: float, *, write: bool = False) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise WireTimeout("deadline passed")
    ready = select.select([], [fd], [], remaining) if write else select.select([fd], [], [], remaining)
    if not any(ready):
        raise WireTimeout("deadline passed")


def _read_exact(fd: int, size: int, deadline: float | None) -> bytearray:
    out = bytearray(size)
    view = memoryview(out)
    got = 0
    while got < size:
        if deadline is not None:
            _wait(fd, deadline)
        try:
            chunk = os.readv(fd, [view[got : got + _CHUNK]])
        except BlockingIOError:
            continue
        if chunk == 0:
            raise WireClosed("the pipe closed in the middle of a message" if got else "the pipe closed")
        got += chunk
    return out


def read_message(
    fd: int, deadline: float | None = None, max_bytes: int = 2**34
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Receive one message; its header (without ``"arrays"``) and its arrays by name.

    Raises :class:`WireTimeout` past ``deadline``, :class:`WireClosed` at end of file and
    :class:`WireError` for anything malformed, including arrays declaring more than
    ``max_bytes`` in all (checked before anything is allocated)."""
    prefix = bytes(_read_exact(fd, len(MAGIC) + _LENGTH.size, deadline))
    if prefix[: len(MAGIC)] != MAGIC:
        raise WireError(f"not a message of this harness (it starts {prefix[:8]!r})")
    (length,) = _LENGTH.unpack(prefix[len(MAGIC) :])
    if length > _MAX_HEADER:
        raise WireError(f"a header of {length} bytes is too long")
    try:
        header = json.loads(bytes(_read_exact(fd, length, deadline)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise WireError("the header is not a JSON object with a list of arrays")
    specs = header.pop("arrays", [])
    layout = [_checked_spec(spec) for spec in specs]
    total = sum(nbytes for _, _, _, nbytes in layout)
    if total > max_bytes:
        raise WireError(f"the message declares {total} bytes of arrays, more than the {max_bytes} expected")
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape, nbytes in layout:
        if name in arrays:
            raise WireError(f"the message names array {name!r} twice")
        arrays[name] = np.frombuffer(_read_exact(fd, nbytes, deadline), dtype=dtype).reshape(shape)
    return header, arrays


def _checked_spec(spec: object) -> tuple[str, np.dtype, tuple[int, ...], int]:
    if not isinstance(spec, dict):
        raise WireError("an array's description is not an object")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or dtype not in ALLOWED_DTYPES:
        raise WireError(f"array {name!r} has a name or dtype {dtype!r} this wire does not carry")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"array {name!r} has a malformed shape {shape!r}")
    if len(shape) > 32:
        raise WireError(f"array {name!r} has {len(shape)} dimensions")
    np_dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=object)) * np_dtype.itemsize
    return name, np_dtype, tuple(shape), nbytes


# ----------------------------------------------------------------------------- cases

_PARAM = "param:"
_CASE_ARRAYS = ("x", "h0", "c0", "targets", "lengths", "dh_n", "dc_n")


def case_to_wire(case: Case) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A case as a header (its config, seed, weight_scale) and its arrays by name."""
    header = {"config": case.config.as_dict(), "seed": case.seed, "weight_scale": case.weight_scale}
    arrays = {_PARAM + name: value for name, value in case.params.items()}
    for name in _CASE_ARRAYS:
        value = getattr(case, name)
        if value is not None:
            arrays[name] = value
    return header, arrays


def case_from_wire(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Case:
    """The case :func:`case_to_wire` sent: a new, validated :class:`Case` with its own config."""
    params = {name[len(_PARAM) :]: value for name, value in arrays.items() if name.startswith(_PARAM)}
    return Case(
        config=LSTMConfig(**header["config"]),
        params=params,
        seed=header.get("seed"),
        weight_scale=header.get("weight_scale"),
        **{name: arrays.get(name) for name in _CASE_ARRAYS},
    )
