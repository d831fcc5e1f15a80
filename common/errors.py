"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad file, bad option); the message says which file, what, and what to do.

    Anything else that escapes is a bug and keeps its traceback.
    """


class OutputError(UserError):
    """An output could not be written (disk full, permission, quota): the batch stops, naming the file,
    and nothing is marked done for the item being written."""
