"""`--precision fp32|bf16|fp16`: which number type a generator renders in.

fp32 is exact (what every parity test proves) and the default. bf16 and fp16 follow NVIDIA's mixed
precision (`stylegan2-ada-pytorch`, `SynthesisBlock.use_fp16`): only the blocks at the highest
resolutions, where almost all of the arithmetic is, compute in the reduced type; the mapping network,
the styles, the demodulation coefficients and the accumulated image stay in fp32, so a render is
always returned in fp32 and the losses of inversion and tuning are computed in fp32. A generator
offers reduced precision through `set_reduced_precision(dtype | None)`; one that does not renders in
fp32 only and says so, so a stage never needs to know which architecture it drives.
"""

from __future__ import annotations

from typing import Any

import torch

from common.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

# NVIDIA's training default (`train.py`: num_fp16_res = 4, conv_clamp = 256), used when a checkpoint
# does not say (rosinality, genforce, converted TensorFlow weights, the bundled model).
DEFAULT_REDUCED_RESOLUTIONS = 4
DEFAULT_FP16_CLAMP = 256.0


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise UserError(f"--precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    return name


def reduced_dtype(name: str) -> torch.dtype | None:
    """The number type of the reduced blocks (None: fp32 everywhere)."""
    return DTYPES[check_precision(name)]


def set_precision(generator: Any, name: str) -> None:
    """Make the following renders of `generator` use precision `name`; a UserError for a generator
    that renders in fp32 only, asked for anything else."""
    dtype = reduced_dtype(name)
    setter = getattr(generator, "set_reduced_precision", None)
    if callable(setter):
        setter(dtype)
    elif dtype is not None:
        kind = type(generator).__module__.rsplit(".", 1)[-1]
        raise UserError(f"--precision {name}: this generator ({kind}) renders in fp32 only; reduced precision is written "
                        f"for StyleGAN2 and StyleGAN3 networks; use --precision fp32")


def fingerprint_part(name: str) -> dict[str, str]:
    """What precision adds to an output's fingerprint: nothing for fp32, so outputs made before the option
    existed keep their fingerprints."""
    return {} if check_precision(name) == "fp32" else {"precision": name}
