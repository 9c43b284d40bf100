"""Malformed: returns [loss, grads], a list, where the contract asks for a tuple (exit 1, clear message)."""

from typing import Any

from textbook_lstm import grads as textbook_grads


def grads(case: Any) -> list:
    """The right numbers in the wrong container."""
    loss, out = textbook_grads(case)
    return [loss, out]
