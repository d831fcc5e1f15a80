"""Where pivotal tuning's result lives: `OUT/<name>_tuned.safetensors` beside the face's code.

The file holds the weight delta (tuned - original) of every parameter tuning changed, in fp16 unless
fp32 is asked for, and in its metadata the generator's sha256 and the fingerprint of what made it
(crop, pivot settings, tuning settings), so a rerun redoes exactly the faces whose inputs changed.
safetensors holds tensors only: reading one executes nothing. Every stage that renders a face
(`edit`, paste-back, the report) loads the delta lazily, one face at a time, so a batch of hundreds of
tuned faces holds one tuned generator at a time.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from common import atomic
from common.errors import UserError
from common.regular_files import problem_with

SUFFIX = "_tuned.safetensors"
PRECISIONS = {"fp16": torch.float16, "fp32": torch.float32}
MAX_DELTA_BYTES = 4 * 2**30  # a 1024 px StyleGAN2's synthesis weights in fp32 are ~120 MB


class BadDelta(UserError):
    """A delta file that cannot be used for its face: that face is reported and skipped, the batch goes on."""


def tuned_path(code_path: Path) -> Path:
    """The delta file of the code `NAME.npy`."""
    code_path = Path(code_path)
    return code_path.with_name(code_path.stem + SUFFIX)


def delta_of_code(code_path: Path) -> Path | None:
    """The delta a code renders with: its own (`--tune-per face`), or its photo's, which the code's record
    names (`--tune-per photo`); None when the face was not tuned."""
    own = tuned_path(code_path)
    if own.is_file():
        return own
    info = atomic.read_json_object(Path(code_path).with_suffix(".json")) or {}
    record = info.get("record") if isinstance(info.get("record"), dict) else {}
    shared = record.get("tuned")
    return Path(shared) if isinstance(shared, str) and shared.endswith(SUFFIX) and Path(shared).is_file() else None


def write_delta(path: Path, delta: dict[str, torch.Tensor], generator_sha256: str, made_by: str, precision: str = "fp16") -> Path:
    if precision not in PRECISIONS:
        raise UserError(f"--tune-precision {precision!r}: expected fp16 or fp32")
    tensors = {name: value.detach().to("cpu", PRECISIONS[precision]).contiguous() for name, value in delta.items()}
    data = save(tensors, metadata={"generator_sha256": generator_sha256, "fingerprint": made_by, "precision": precision})
    return atomic.write_bytes(path, data)


def read_delta(path: Path, generator_sha256: str) -> dict[str, torch.Tensor]:
    """The delta in `path`, checked to be for this generator; a one-line UserError otherwise."""
    problem = problem_with(path)
    if problem is not None:
        raise BadDelta(f"{path}: {problem}; invert the face again with --tune")
    if path.stat().st_size > MAX_DELTA_BYTES:
        raise BadDelta(f"{path}: {path.stat().st_size / 2**20:.0f} MB is larger than any generator's tuning delta")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as opened:
            metadata = opened.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BadDelta(f"{path}: not a readable tuning delta ({str(exc).splitlines()[0]}); invert the face again") from None
    if metadata.get("generator_sha256") != generator_sha256:
        raise BadDelta(f"{path}: tuned for another generator (sha256 {str(metadata.get('generator_sha256'))[:12]}...); "
                        f"invert the face again with this generator")
    return {name: value.float() for name, value in tensors.items()}


def delta_fingerprint(path: Path) -> str | None:
    """The fingerprint stored in a delta file, None when there is none or it cannot be read."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as opened:
            return (opened.metadata() or {}).get("fingerprint")
    except (SafetensorError, OSError, ValueError):
        return None


def apply_delta(generator: torch.nn.Module, delta: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A copy of `generator` with a stored delta added: the tuned generator of one photo."""
    tuned = copy.deepcopy(generator)
    parameters = dict(tuned.named_parameters())
    unknown = sorted(set(delta) - set(parameters))
    if unknown:
        raise ValueError(f"the tuning delta names parameters this generator does not have: {unknown[:3]}")
    with torch.no_grad():
        for name, change in delta.items():
            if change.shape != parameters[name].shape:
                raise ValueError(f"the tuning delta of {name} has shape {list(change.shape)}, "
                                 f"the generator's is {list(parameters[name].shape)}")
            parameters[name].add_(change.to(parameters[name].device, parameters[name].dtype))
    return tuned
