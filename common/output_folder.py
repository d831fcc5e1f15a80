"""Claiming an output folder: refuse a path that is a file, prove it writable, and lock it.

Every stage writes into one OUT folder. Two processes writing the same OUT at once would race on the
same files and done-markers, so the first one holds an exclusive `flock` on `OUT/.sefa-edit.lock` for
as long as it works there and the second is refused with a clear message. The lock dies with the
process (a killed run never leaves a stale lock behind). The lock file is deleted when the command
ends, while it is still locked; so that a process which opened the old file just before cannot then
lock a file nobody else sees, a lock only counts when the locked descriptor is still the file at
`OUT/.sefa-edit.lock` (same inode), and is taken again otherwise.

A killed process does leave its temporary files (`common.atomic` writes `.NAME.XXXX.tmp` beside each
output and renames it when complete). Once the lock is ours no one else writes in OUT, so the
temporaries found there are all stale and are removed, in OUT and its subfolders, except subfolders
that another process has locked as its own OUT at that moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from common.errors import UserError
from common.regular_files import resolved

LOCK_NAME = ".sefa-edit.lock"
# common.atomic's temporaries (`.NAME.XXXXXXXX.tmp`, `.STEM.PID.tmp.SUFFIX`) and the write probe below.
_TEMPORARY = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$|^\.write-test-")


def check_output_path(out_dir: Path, option: str = "OUT") -> None:
    """Cheap checks worth doing before any slow work: OUT must not be an existing file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: {option} is an existing file, not a folder; choose a folder path for the outputs")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{out_dir}: {parent} is a file, so {option} cannot be created there; choose another path")
            break


@contextlib.contextmanager
def claimed_output_folder(out_dir: Path, option: str = "OUT") -> Iterator[Path]:
    """Create OUT if needed, check that it is writable and hold its lock while the body runs."""
    out_dir = Path(out_dir)
    check_output_path(out_dir, option)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot write the output folder ({exc.strerror or exc}); choose a writable {option}") from exc
    lock_path = out_dir / LOCK_NAME
    handle = _take_lock(lock_path, out_dir, option)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        remove_stale_temporaries(out_dir)
        yield out_dir
    finally:
        try:
            os.unlink(lock_path)  # still locked: no one can take it in between, and no file is left behind
        except OSError:
            pass
        handle.close()  # closing the descriptor releases the lock


def _take_lock(lock_path: Path, out_dir: Path, option: str):
    """An open, exclusively locked handle on the file that is `lock_path` now, or UserError if another
    process holds it. A file deleted or replaced between our open and our lock is not the lock: retry."""
    for _ in range(100):
        try:
            handle = open(lock_path, "a+")
        except OSError as exc:
            raise UserError(f"{out_dir}: cannot write the output folder ({exc.strerror or exc}); choose a writable {option}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{out_dir}: another sefa-edit ({holder}) is writing into this folder; "
                            f"wait for it to finish or choose another {option}") from None
        if _same_file(handle, lock_path):
            return handle
        handle.close()  # the holder we waited on deleted it as it ended: lock the file that is there now
    raise UserError(f"{out_dir}: the lock file {LOCK_NAME} keeps changing; is another program deleting it?")


def _same_file(handle, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete the temporary files earlier, killed runs left in OUT (the caller holds OUT's lock);
    returns how many. A subfolder locked by another process is left alone: it is that one's OUT."""
    removed = 0
    for folder, subfolders, files in os.walk(out_dir):
        subfolders[:] = [name for name in subfolders if not _locked_by_another(Path(folder) / name)]
        for name in files:
            if _TEMPORARY.match(name):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass  # gone meanwhile, or not ours to delete: harmless either way
    return removed


def _locked_by_another(folder: Path) -> bool:
    lock = folder / LOCK_NAME
    if not lock.is_file():
        return False
    try:
        with open(lock, "rb") as probe:  # never creates one
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def is_inside(path: Path, folder: Path) -> bool:
    """True when `path` is `folder` or lies under it (both resolved, so `..` and links do not fool it)."""
    try:
        resolved(path).relative_to(resolved(folder))
        return True
    except ValueError:
        return False
