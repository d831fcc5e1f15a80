"""Checks on option values that every command shares: finite numbers, names that are not paths."""

from __future__ import annotations

import math
import re

from common.errors import UserError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def require_finite(option: str, value: float | None) -> None:
    """NaN or infinity in a numeric option is always a mistake (`--lr nan` would silently train nothing)."""
    if value is not None and not math.isfinite(value):
        raise UserError(f"{option} {value}: must be a finite number")


def require_label_name(name: str, where: str) -> None:
    """Labels become file names (`age_+2p00.png`): letters, digits, `_` and `-`, starting with a letter."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"{where}: label {name!r} is not a valid name; use letters, digits, '_' or '-', starting with a letter "
                        f"(at most 64 characters)")
