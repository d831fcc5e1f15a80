"""Ctrl-C always stops a command (`common/interrupt.py`): a KeyboardInterrupt that something swallowed is
raised again at the next progress step, a second Ctrl-C ends the process at once, and an exit stuck on a
library's thread is ended. Each case runs in its own Python process: the handler's state is process-wide."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.hardening_helpers import sigint_as_on_a_terminal

REPO = Path(__file__).resolve().parents[1]
PRELUDE = """
import os, signal, sys, threading, time
sys.path.insert(0, {repo!r})
from common import interrupt
from common.progress import track
interrupt.install()
"""


def sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def python(body: str, preexec=sigint_as_on_a_terminal) -> subprocess.CompletedProcess:
    script = PRELUDE.format(repo=str(REPO)) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, preexec_fn=preexec)


def test_a_swallowed_ctrl_c_is_raised_again_at_the_next_step():
    result = python("""
        try:  # a library that swallows the KeyboardInterrupt raised inside it
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            print("swallowed")
        steps = 0
        try:
            for _ in track(range(1000), "work"):
                steps += 1
        except KeyboardInterrupt:
            print(f"stopped after {steps} steps")
        for _ in track(range(3), "clean-up"):  # raised once only: the clean-up that follows runs
            steps += 1
        print(f"clean-up ran to {steps}")
    """)
    assert result.stdout.split("\n")[:3] == ["swallowed", "stopped after 0 steps", "clean-up ran to 3"], result.stderr


def test_no_second_exception_while_the_first_is_being_handled():
    result = python("""
        from common.progress import report_progress
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            report_progress("closing", 1, 2)  # clean-up reporting progress while the Ctrl-C is handled
            print("handled")
    """)
    assert result.stdout.strip() == "handled" and result.returncode == 0, result.stderr


def test_a_second_ctrl_c_ends_the_process_at_once():
    started = time.monotonic()
    result = python("""
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            signal.raise_signal(signal.SIGINT)  # pressed again during a slow clean-up
            time.sleep(30)
    """)
    assert result.returncode == 130 and "interrupted again: stopping now" in result.stderr
    assert time.monotonic() - started < 20


def test_an_exit_stuck_on_a_thread_is_ended_with_the_code():
    started = time.monotonic()
    result = python("""
        threading.Thread(target=threading.Event().wait).start()  # never ends: the interpreter would join it forever
        interrupt.exit_soon(130, seconds=0.5)
        print("leaving", flush=True)
        sys.exit(130)
    """)
    assert result.returncode == 130 and result.stdout.strip() == "leaving"
    assert time.monotonic() - started < 20


def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it():
    result = python("""
        signal.raise_signal(signal.SIGINT)
        print("still here", signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
    """, preexec=sigint_ignored)
    assert result.stdout.strip() == "still here True", result.stderr
