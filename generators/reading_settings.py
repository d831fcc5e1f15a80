"""How to read a checkpoint where its tensors cannot tell: settings in a JSON file beside it.

A genforce StyleGAN (v1) state dict is the same for `fused_scale=True` (the up-convolution is one
stride-2 transposed convolution) and `False` (nearest 2x, then a 3x3 convolution): the weights have
the same shapes, and the two render different images (they differ at every border pixel). SeFa's
model zoo used `fused_scale='auto'` (fused from 128 px up), so that is what we assume, and say so once
on stderr and in `models info`. A network trained otherwise is read right with a file named like the
checkpoint plus `.json` (`stylegan_mine.pth.json`):

    {"fused_scale": true}          # or false, or "auto"

Those settings change the images, so they are part of the checkpoint's identity: its `sha256`, which
every output's fingerprint and every directions file records, covers the file and these settings.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from common.errors import UserError
from common.json_files import read_json_object

SUFFIX = ".json"
FUSED_SCALE_VALUES = ("auto", True, False)
KNOWN_KEYS = {"fused_scale": FUSED_SCALE_VALUES}

_said: set[tuple[str, str]] = set()
notice: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)


def settings_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_name(Path(checkpoint).name + SUFFIX)


def read_settings(checkpoint: Path) -> dict[str, Any]:
    """The settings file beside `checkpoint`, checked key by key ({} when there is none)."""
    path = settings_path(checkpoint)
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        raw = read_json_object(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UserError(f"{path}: the checkpoint's settings cannot be read ({reason}); "
                        f'write e.g. {{"fused_scale": true}} or delete the file') from None
    for key, value in raw.items():
        if key not in KNOWN_KEYS:
            raise UserError(f"{path}: unknown setting {key!r}; known: {', '.join(KNOWN_KEYS)}")
        if not any(value is allowed or (isinstance(allowed, str) and value == allowed) for allowed in KNOWN_KEYS[key]):
            raise UserError(f"{path}: {key} {value!r}: expected one of \"auto\", true, false")
    return raw


def say_once(checkpoint: Path, message: str) -> None:
    """A reading assumption, once per checkpoint and process (a `run` loads one file in four stages)."""
    key = (str(Path(checkpoint).resolve()), message)
    if key not in _said:
        _said.add(key)
        notice(f"warning: {checkpoint}: {message}")
