"""Code that never returns: a sleep and a busy loop (also in a subprocess it starts)."""

import subprocess
import time

from _wrong import wrong_answer


def grads_sleep(case):
    time.sleep(3600)
    return wrong_answer(case)


def grads_loop(case):
    subprocess.Popen(["sleep", "3600"])
    while True:
        pass


def grads_hang_when_long(case):
    if case.config.seq_len >= 3:
        time.sleep(3600)
    return wrong_answer(case)
