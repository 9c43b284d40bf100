"""Correct, but chatty: prints progress with print() at import and on every call.

The harness must send that output to standard error, pass (exit 0) and keep
its own standard output (the --json object) valid.
"""

from typing import Any

import numpy as np
from textbook_lstm import grads as textbook_grads

print("prints_to_stdout: loaded the textbook LSTM")


def grads(case: Any) -> tuple[float, dict[str, np.ndarray]]:
    """Textbook gradients, with progress messages on stdout."""
    cfg = case.config
    print(f"computing gradients: {cfg.num_layers} layer(s), {cfg.seq_len} step(s), batch {cfg.batch_size}")
    loss, out = textbook_grads(case)
    print(f"loss = {loss:.6f}; {len(out)} gradients")
    return loss, out
