"""The one JSON encoding of every ``--json`` output.

Non-finite numbers (an infinite relative error against a zero scale, a NaN
for a step that could not be measured) are written as ``null``: JSON has no
other spelling for them, and a consumer sees "no number" rather than a crash.
NumPy scalars and arrays become plain numbers and lists. The text is built
whole before anything is written, so standard output never holds half an object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np

__all__ = ["plain", "dumps", "write_json"]


def plain(value: Any) -> Any:
    """``value`` as JSON-ready Python: finite floats, None for non-finite ones, lists for arrays."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def dumps(data: Mapping[str, Any]) -> str:
    """One JSON object, indented, with the encoding of the module docstring."""
    return json.dumps(plain(data), indent=2, allow_nan=False) + "\n"


def write_json(data: Mapping[str, Any], stream: TextIO) -> None:
    stream.write(dumps(data))
    stream.flush()
