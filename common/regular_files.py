"""Opening files named by someone else: only regular files, and never a read that blocks forever.

A path that a user, a sidecar, a code record or a recipe names may be a FIFO (a plain `open` waits
for a writer that never comes), a device (`/dev/zero` never ends), a folder, a dangling link or a
link loop. `open_regular` opens with O_NONBLOCK, so even a FIFO opens at once, then asks the open
descriptor (fstat, no race with a swap of the path) what it is, and refuses anything but a regular
file with an OSError whose `strerror` says what the path is in plain words.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotRegularFile(OSError):
    """The path exists but is not a regular file; `strerror` names what it is."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file but {kind}", str(path))


def describe_mode(mode: int) -> str:
    """What a non-regular path is, as a user would say it."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def problem_with(path: Path) -> str | None:
    """None for a regular file (links followed); otherwise why it cannot be read, in plain words:
    the reason a folder scan lists for a dangling link, a link loop, a FIFO or a device."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "a dangling symbolic link (its target does not exist)"
        return f"cannot read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file but {describe_mode(mode)}"


def open_regular(path: Path | str) -> BinaryIO:
    """Open a regular file for binary reading; a FIFO, device or folder raises NotRegularFile at once."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, describe_mode(mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: Path | str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; a larger one is a ValueError saying so."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{size:,} bytes, over the limit of {max_bytes:,}")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise ValueError(f"over the limit of {max_bytes:,} bytes")
    return data


def absolute(path: Path | str) -> Path:
    """The path to report for an item: its folder resolved, its own name kept, so a link (a loop, a
    dangling link, a link to /dev/zero) is reported as the link the user has, not as its target."""
    path = Path(path)
    return path.parent.resolve() / path.name


def resolved(path: Path | str) -> Path:
    """`path` with every link resolved, or `absolute(path)` for a link loop that cannot be resolved."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11's "Symlink loop"
        return absolute(path)
