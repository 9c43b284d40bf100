"""Output below sys.stdout: os.write on fd 1, a subprocess, C's printf. --json must stay one object."""

import ctypes
import os
import subprocess
import sys

from _wrong import wrong_answer

from lstm_gradcheck import reference


def _print_everywhere():
    os.write(1, b"os.write on fd 1 {not json\n")
    subprocess.run(["echo", "a subprocess's echo"], check=True)
    libc = ctypes.CDLL(None)
    libc.printf(b"C printf %d\n", 42)
    print("print() to sys.stdout")
    print("print() to sys.stderr", file=sys.stderr)
    os.write(2, b"os.write on fd 2\n")


def grads(case):
    _print_everywhere()
    return reference.grads(case)


def grads_wrong(case):
    _print_everywhere()
    return wrong_answer(case)
