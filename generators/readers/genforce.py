"""genforce (`genforce/genforce`, `genforce/sefa`) checkpoints (`.pth`): StyleGAN2, StyleGAN, PGGAN.

The weights sit under `generator_smooth` (the averaged generator) or `generator`, possibly inside a
`models` dict. StyleGAN2 keys are renamed onto NVIDIA's: genforce's `layer{i}` is W+ entry i
(`layer0` = 4x4 conv, odd = up-conv, even = conv), `output{b}` the to-RGB of block b, and the style
affine `style` has its constant +1 outside the stored bias (`additional_bias`), which NVIDIA folds in.
Its up-conv kernels are in TensorFlow orientation and are flipped spatially into NVIDIA's.
StyleGAN (v1) and PGGAN keep their own names, which `generators/stylegan.py` and `generators/pggan.py`
use; their architecture is read off the shapes here (`stylegan_config`, `pggan_config`) and the layout
is then checked key by key against the network built from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from generators.pggan import PGGANConfig
from generators.state_layout import LayoutError, need
from generators.stylegan import StyleGANConfig, default_fused_resolutions

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


def stylegan2_architecture(state: Mapping[str, torch.Tensor]) -> str:
    """genforce's `architecture` of a StyleGAN2 generator, read off its keys: 'skip' has a to-RGB layer
    (`synthesis.output{i}`) at every resolution, 'resnet' has `synthesis.skip_layer{i}` residual
    convolutions, 'origin' a to-RGB layer only at the last resolution."""
    if any(key.startswith("synthesis.skip_layer") for key in state):
        return "resnet"
    layers = {int(m.group(1)) for key in state if (m := re.fullmatch(r"synthesis\.layer(\d+)\.weight", key))}
    outputs = {int(m.group(1)) for key in state if (m := re.fullmatch(r"synthesis\.output(\d+)\.weight", key))}
    blocks = (max(layers) + 2) // 2 if layers else 0
    return "skip" if outputs == set(range(blocks)) else "origin"


def stylegan2_to_nvidia(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if "mapping.label_weight" in state:
        raise KeyError("conditional genforce generators (mapping.label_weight) are not supported")
    architecture = stylegan2_architecture(state)
    if architecture != "skip":
        raise KeyError(f"its architecture is '{architecture}' (read off its tensors), and only genforce's 'skip' "
                       f"StyleGAN2, the one of SeFa's model zoo, is supported")
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


def _check_lod(state: Mapping[str, torch.Tensor], key: str) -> None:
    lod = state.get(key)
    if isinstance(lod, torch.Tensor) and lod.numel() == 1 and float(lod) != 0:
        raise LayoutError(f"key {key} is {float(lod)}: the network stops at a lower level of detail; only lod 0 "
                          f"(full resolution) checkpoints are supported")


@dataclass(frozen=True)
class StyleShapes:
    """What a genforce-family StyleGAN v1 state dict says of its architecture (SeFa's and IDInvert's layouts)."""

    num_ws: int
    w_dim: int
    z_dim: int
    mapping_layers: int
    mapping_hidden: int
    mapping_out: int
    channels: dict[int, int]

    @property
    def resolution(self) -> int:
        return 4 << (self.num_ws // 2 - 1)


def read_style_shapes(state: Mapping[str, torch.Tensor], style_key: str, dense_key: str, bias_key: str) -> StyleShapes:
    """Sizes read off the tensors; the keys are templates with `{i}`, e.g. 'synthesis.layer{i}.style.weight'."""
    def indices(template: str) -> list[int]:
        pattern = re.compile("^" + re.escape(template).replace(r"\{i\}", r"(\d+)") + "$")
        return sorted(int(m.group(1)) for key in state if (m := pattern.match(key)))

    layers = indices(style_key)
    if not layers or layers != list(range(len(layers))) or len(layers) % 2 or len(layers) < 4:
        raise LayoutError(f"synthesis style layers should be layer0..layerN in pairs, found {layers[:8]}")
    dense = indices(dense_key)
    if not dense or dense != list(range(len(dense))):
        raise LayoutError(f"mapping layers should be dense0..denseN, found {dense[:8]}")
    first = need(state, dense_key.format(i=0), 2)
    mapping_out = int(need(state, dense_key.format(i=dense[-1]), 2).shape[0])
    num_ws = len(layers)
    return StyleShapes(
        num_ws=num_ws, w_dim=int(need(state, style_key.format(i=0), 2).shape[1]), z_dim=int(first.shape[1]),
        mapping_layers=len(dense), mapping_hidden=int(first.shape[0]) if len(dense) > 1 else mapping_out,
        mapping_out=mapping_out,
        channels={4 << b: int(need(state, bias_key.format(i=2 * b), 1).shape[0]) for b in range(num_ws // 2)},
    )


def fused_resolutions(resolution: int, fused_scale: str | bool) -> tuple[int, ...]:
    """The up layers genforce computes as transposed convolutions: all (True), none (False), or from
    128 px up ('auto', SeFa's model zoo). The state dict is the same for all three."""
    if fused_scale is True:
        return tuple(2**r for r in range(3, resolution.bit_length()))
    if fused_scale is False:
        return ()
    return default_fused_resolutions(resolution)


def stylegan_config(state: Mapping[str, torch.Tensor], fused_scale: str | bool = "auto") -> StyleGANConfig:
    """StyleGAN v1 in genforce/SeFa layout: sizes read off the tensors; no final tanh, and `fused_scale`
    ('auto' unless the checkpoint's settings file says otherwise), the settings of every StyleGAN in
    SeFa's model zoo."""
    if "mapping.label_weight" in state:
        raise LayoutError("conditional genforce generators (mapping.label_weight) are not supported")
    _check_lod(state, "synthesis.lod")
    shapes = read_style_shapes(state, "synthesis.layer{i}.style.weight", "mapping.dense{i}.weight", "synthesis.layer{i}.bias")
    if shapes.mapping_out != shapes.w_dim:
        raise LayoutError(f"key mapping.dense{shapes.mapping_layers - 1}.weight outputs {shapes.mapping_out} values, expected "
                          f"w_dim {shapes.w_dim} (genforce StyleGAN with repeat_w=False is not supported)")
    return StyleGANConfig(
        img_resolution=shapes.resolution, channels=shapes.channels, z_dim=shapes.z_dim, w_dim=shapes.w_dim,
        mapping_layers=shapes.mapping_layers, mapping_hidden=shapes.mapping_hidden, repeat_w=True, final_tanh=False,
        fused_resolutions=fused_resolutions(shapes.resolution, fused_scale),
    )


def pggan_config(state: Mapping[str, torch.Tensor]) -> PGGANConfig:
    """PGGAN in genforce/SeFa layout (`fused_scale=False`, no tanh, as in the zoo)."""
    _check_lod(state, "lod")
    blocks = sorted(int(m.group(1)) for key in state if (m := re.fullmatch(r"output(\d+)\.weight", key)))
    if not blocks or blocks != list(range(len(blocks))) or len(blocks) < 2:
        raise LayoutError(f"PGGAN to-RGB layers should be output0..outputN, found {blocks[:8]}")
    channels = {4 << b: int(need(state, f"layer{2 * b}.bias", 1).shape[0]) for b in blocks}
    z_dim = int(need(state, "layer0.weight", 4).shape[1])
    return PGGANConfig(img_resolution=4 << blocks[-1], channels=channels, z_dim=z_dim)
