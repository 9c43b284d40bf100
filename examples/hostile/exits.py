"""Wrong gradients, then an exit inside grads: each way must be this implementation's failure."""

import os
import sys

from _wrong import wrong_answer


def grads_sys_exit(case):
    wrong_answer(case)
    sys.exit(0)


def grads_raise_systemexit(case):
    wrong_answer(case)
    raise SystemExit


def grads_os_exit(case):
    wrong_answer(case)
    os._exit(0)


def grads_kill_itself(case):
    wrong_answer(case)
    os.kill(os.getpid(), 9)
