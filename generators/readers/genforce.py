"""genforce (`genforce/genforce`, `genforce/sefa`) checkpoints (`.pth`): StyleGAN2, StyleGAN, PGGAN.

The weights sit under `generator_smooth` (the averaged generator) or `generator`, possibly inside a
`models` dict. StyleGAN2 keys are renamed onto NVIDIA's: genforce's `layer{i}` is W+ entry i
(`layer0` = 4x4 conv, odd = up-conv, even = conv), `output{b}` the to-RGB of block b, and the style
affine `style` has its constant +1 outside the stored bias (`additional_bias`), which NVIDIA folds in.
Its up-conv kernels are in TensorFlow orientation and are flipped spatially into NVIDIA's.
StyleGAN (v1) and PGGAN keep their own names: they are read for SeFa, not synthesised.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

STATE_KEYS = ("generator_smooth", "generator")


def find_generator_state(checkpoint: Mapping[str, Any]) -> Mapping[str, torch.Tensor] | None:
    containers = [checkpoint]
    if isinstance(checkpoint.get("models"), Mapping):
        containers.append(checkpoint["models"])
    for container in containers:
        for key in STATE_KEYS:
            value = container.get(key)
            if isinstance(value, Mapping):
                return value
    return None


def detect_architecture(state: Mapping[str, torch.Tensor]) -> str | None:
    if "synthesis.early_layer.const" in state:
        return "stylegan2"
    if "synthesis.layer0.style.weight" in state:
        return "stylegan"
    if "layer0.weight" in state and any(key.startswith("output") for key in state):
        return "pggan"
    return None


def _layer_destination(index: int) -> tuple[str, bool]:
    """genforce `layer{i}` -> (NVIDIA module name, is an up-conv)."""
    if index == 0:
        return "synthesis.b4.conv1", False
    res = 4 << ((index + 1) // 2)
    return (f"synthesis.b{res}.conv0", True) if index % 2 == 1 else (f"synthesis.b{res}.conv1", False)


def stylegan2_to_nvidia(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if "mapping.label_weight" in state:
        raise KeyError("conditional genforce generators (mapping.label_weight) are not supported")
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if match := re.fullmatch(r"mapping\.dense(\d+)\.(weight|bias)", key):
            out[f"mapping.fc{match.group(1)}.{match.group(2)}"] = tensor
        elif key == "truncation.w_avg":
            out["mapping.w_avg"] = tensor
        elif key == "synthesis.early_layer.const":
            out["synthesis.b4.const"] = tensor[0]
        elif match := re.fullmatch(r"synthesis\.layer(\d+)\.(weight|bias|style\.weight|style\.bias|noise_strength|noise)", key):
            dst, is_up = _layer_destination(int(match.group(1)))
            out.update(_convert_modulated(dst, match.group(2), tensor, is_up))
        elif match := re.fullmatch(r"synthesis\.output(\d+)\.(weight|bias|style\.weight|style\.bias)", key):
            dst = f"synthesis.b{4 << int(match.group(1))}.torgb"
            out.update(_convert_modulated(dst, match.group(2), tensor, False))
        elif key.startswith("synthesis.skip_layer"):
            raise KeyError(f"genforce 'resnet' architecture is not supported ({key})")
        elif key.endswith(".kernel"):
            continue  # fixed FIR filters, recreated by the network
        else:
            raise KeyError(f"unrecognised tensor {key}")
    if out.get("mapping.w_avg") is not None and out["mapping.w_avg"].ndim != 1:
        raise KeyError("per-layer w_avg (repeat_w=False) is not supported")
    return out


def _convert_modulated(dst: str, field: str, tensor: torch.Tensor, is_up: bool) -> dict[str, torch.Tensor]:
    if field == "weight":
        return {f"{dst}.weight": tensor.flip([2, 3]) if is_up else tensor}
    if field == "bias":
        return {f"{dst}.bias": tensor}
    if field == "style.weight":
        return {f"{dst}.affine.weight": tensor}
    if field == "style.bias":
        return {f"{dst}.affine.bias": tensor + 1}
    if field == "noise_strength":
        return {f"{dst}.noise_strength": tensor.reshape([])}
    return {f"{dst}.noise_const": tensor[0, 0]}
