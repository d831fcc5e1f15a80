"""Ctrl-C that always stops a command, and never leaves it hanging.

Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread happens to be. That is
almost always right, but the exception can be lost: raised inside a finalizer or a callback that a
library calls from C (Python prints "Exception ignored" and goes on), it never reaches the command,
and a 30-minute inversion carries on as if Ctrl-C had not been pressed. And once it does reach the
command, the interpreter still joins the threads of the libraries it used (a process pool's manager,
a queue's feeder) before it exits; one of those stuck on a dead worker's pipe would hang the exit.

So the CLI installs `on_ctrl_c` in its main thread:
  - the first Ctrl-C raises KeyboardInterrupt as Python would, and remembers that it was pressed;
    `raise_if_interrupted` (called at every progress step and between items) raises it once more if
    the first one was lost, so the work stops at the next step whatever swallowed it;
  - the command says its one line and exits 130; `exit_soon` ends the process if that exit is still
    waiting on a library's thread some seconds later;
  - a second Ctrl-C ends the process at once.
Outputs are always written to a temporary name and renamed, so ending the process at any point loses
no finished output.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

SECOND_PRESS_WORDS = b"interrupted again: stopping now\n"
EXIT_GRACE_SECONDS = 10.0
_pressed = threading.Event()
_rescued = threading.Event()  # raise_if_interrupted has raised its one extra KeyboardInterrupt


def install() -> None:
    """Handle Ctrl-C as the module docstring says. Only from the main thread, and not when SIGINT is
    ignored (a command started in a shell's background job, or by `nohup`, must keep ignoring it)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    signal.signal(signal.SIGINT, on_ctrl_c)


def on_ctrl_c(signum: int, frame) -> None:
    if _pressed.is_set():
        os.write(2, SECOND_PRESS_WORDS)
        os._exit(130)
    _pressed.set()
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed and the work goes on: its first exception was lost.
    Once only, and never while a KeyboardInterrupt is already being handled (the command's clean-up may
    report progress; interrupting it again would leave workers behind)."""
    if not _pressed.is_set() or _rescued.is_set():
        return
    if isinstance(sys.exc_info()[1], KeyboardInterrupt):
        return
    _rescued.set()
    raise KeyboardInterrupt


def exit_soon(code: int, seconds: float = EXIT_GRACE_SECONDS) -> None:
    """End the process with `code` in `seconds` unless it has exited by then: a watchdog for an exit
    that waits on a library's stuck thread. Streams are flushed first; what matters is on disk already."""
    def end() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()
