"""Faults of the implementation that must be its failure (exit 1), not the harness's (3) or Ctrl-C (130)."""

import sys

import torch
from _wrong import wrong_answer


def grads_no_grad(case):
    torch.set_grad_enabled(False)
    return wrong_answer(case)


def grads_low_recursion_limit(case):
    sys.setrecursionlimit(25)
    return wrong_answer(case)


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


def grads_unprintable_exception(case):
    raise Unprintable()


def grads_keyboard_interrupt(case):
    raise KeyboardInterrupt


def grads_memory_error(case):
    raise MemoryError("cannot allocate")
