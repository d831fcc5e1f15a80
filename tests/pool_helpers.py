"""Functions for the process-pool tests, in a module of their own: worker processes import it, and it
imports nothing heavy."""

from __future__ import annotations

import os
import signal


def square_or_die(value: int, dies_on: int) -> int:
    """value squared; the process kills itself on `dies_on`, as a segfault in native code would end it."""
    if value == dies_on:
        os.kill(os.getpid(), signal.SIGKILL)
    return value * value


def square_or_raise(value: int) -> int:
    if value == 3:
        raise ValueError("three is refused")
    return value * value
