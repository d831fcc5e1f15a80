"""Small checkpoints in each real on-disk format, written from a randomly initialised network.

Each writer uses the source project's own key names, nesting, tensor shapes and conventions
(rosinality's [1, out, in, k, k] modulated weights and `noises.noise_i`; genforce's `layer{i}` /
`output{b}`, +1 style bias and TensorFlow-oriented up-conv kernels; NVIDIA's persistence pickles
with embedded source code), so the readers are tested against the formats, not against themselves.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from generators.stylegan2 import Generator, StyleGAN2Config, channels_for


def small_config(resolution: int = 32, **overrides: Any) -> StyleGAN2Config:
    settings = dict(
        img_resolution=resolution,
        channels=channels_for(resolution, channel_base=512, channel_max=32),
        z_dim=16,
        w_dim=16,
        mapping_layers=3,
    )
    settings.update(overrides)
    return StyleGAN2Config(**settings)


def random_generator(config: StyleGAN2Config | None = None, seed: int = 0) -> Generator:
    """A generator whose every tensor is random and non-trivial (biases, noise gains, w_avg too),
    so a reader that drops or misplaces any tensor changes the images."""
    torch.manual_seed(seed)
    generator = Generator(config or small_config())
    with torch.no_grad():
        for name, tensor in list(generator.named_parameters()) + list(generator.named_buffers()):
            if name.endswith("resample_filter"):
                continue
            if name.endswith(("bias", "noise_strength")):
                tensor.copy_(0.2 * torch.randn_like(tensor) + (1.0 if name.endswith("affine.bias") else 0.0))
            elif name.endswith("w_avg"):
                tensor.copy_(0.3 * torch.randn_like(tensor))
            else:
                tensor.copy_(torch.randn_like(tensor))
    return generator.eval().requires_grad_(False)


# --------------------------------------------------------------------------- rosinality

def _blur_kernel() -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k, k)
    return k / k.sum()


def rosinality_state(generator: Generator) -> OrderedDict[str, torch.Tensor]:
    s = generator.state_dict()
    config = generator.config
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i in range(config.mapping_layers):
        out[f"style.{i + 1}.weight"] = s[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = s[f"mapping.fc{i}.bias"]
    out["input.input"] = s["synthesis.b4.const"][None]

    def styled(dst: str, src: str, up: bool) -> None:
        out[f"{dst}.conv.weight"] = s[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = s[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = s[f"{src}.affine.bias"]
        if up:
            out[f"{dst}.conv.blur.kernel"] = _blur_kernel() * 4
        out[f"{dst}.noise.weight"] = s[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = s[f"{src}.bias"]

    def to_rgb(dst: str, src: str, up: bool) -> None:
        if up:
            out[f"{dst}.upsample.kernel"] = _blur_kernel() * 4
        out[f"{dst}.conv.weight"] = s[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = s[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = s[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = s[f"{src}.bias"].reshape(1, -1, 1, 1)

    styled("conv1", "synthesis.b4.conv1", up=False)
    to_rgb("to_rgb1", "synthesis.b4.torgb", up=False)
    noises = {"noises.noise_0": s["synthesis.b4.conv1.noise_const"][None, None]}
    for k, res in enumerate(config.block_resolutions[1:]):
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", up=True)
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", up=False)
        to_rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb", up=True)
        noises[f"noises.noise_{2 * k + 1}"] = s[f"synthesis.b{res}.conv0.noise_const"][None, None]
        noises[f"noises.noise_{2 * k + 2}"] = s[f"synthesis.b{res}.conv1.noise_const"][None, None]
    out.update(noises)
    return out


def write_rosinality(path: Path, generator: Generator, with_latent_avg: bool = True) -> Path:
    """Like rosinality's train.py checkpoints (`g`, `d`, `g_ema`, optimisers, `args`) or the converted
    release files (`g_ema`, `latent_avg`)."""
    state = rosinality_state(generator)
    payload: dict[str, Any] = {"g_ema": state, "g": state, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}}
    payload["args"] = argparse.Namespace(size=generator.img_resolution, latent=generator.w_dim, n_mlp=3)
    if with_latent_avg:
        payload["latent_avg"] = generator.mapping.w_avg.clone()
    torch.save(payload, path)
    return path


# --------------------------------------------------------------------------- genforce

def genforce_state(generator: Generator) -> OrderedDict[str, torch.Tensor]:
    s = generator.state_dict()
    config = generator.config
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i in range(config.mapping_layers):
        out[f"mapping.dense{i}.weight"] = s[f"mapping.fc{i}.weight"]
        out[f"mapping.dense{i}.bias"] = s[f"mapping.fc{i}.bias"]
    out["truncation.w_avg"] = s["mapping.w_avg"]
    out["synthesis.early_layer.const"] = s["synthesis.b4.const"][None]

    def modulated(dst: str, src: str, up: bool, noise: bool) -> None:
        weight = s[f"{src}.weight"]
        out[f"{dst}.weight"] = weight.flip([2, 3]) if up else weight  # TensorFlow orientation
        out[f"{dst}.bias"] = s[f"{src}.bias"]
        out[f"{dst}.style.weight"] = s[f"{src}.affine.weight"]
        out[f"{dst}.style.bias"] = s[f"{src}.affine.bias"] - 1  # genforce adds the 1 at run time
        if up:
            out[f"{dst}.filter.kernel"] = (_blur_kernel() * 4).flip([0, 1])[None, None]
        if noise:
            out[f"{dst}.noise"] = s[f"{src}.noise_const"][None, None]
            out[f"{dst}.noise_strength"] = s[f"{src}.noise_strength"]

    modulated("synthesis.layer0", "synthesis.b4.conv1", up=False, noise=True)
    modulated("synthesis.output0", "synthesis.b4.torgb", up=False, noise=False)
    for k, res in enumerate(config.block_resolutions[1:], start=1):
        modulated(f"synthesis.layer{2 * k - 1}", f"synthesis.b{res}.conv0", up=True, noise=True)
        modulated(f"synthesis.layer{2 * k}", f"synthesis.b{res}.conv1", up=False, noise=True)
        modulated(f"synthesis.output{k}", f"synthesis.b{res}.torgb", up=False, noise=False)
    out["synthesis.upsample.kernel"] = (_blur_kernel() * 4).flip([0, 1])[None, None]
    return out


def write_genforce(path: Path, generator: Generator) -> Path:
    state = genforce_state(generator)
    torch.save({"generator": state, "generator_smooth": state, "discriminator": {"layer0.weight": torch.randn(2, 3, 1, 1)}}, path)
    return path


def _perturbed(module: nn.Module, seed: int) -> OrderedDict[str, torch.Tensor]:
    """A network's own state dict (its real layout) with every float tensor redrawn, so nothing is trivially 0 or 1."""
    generator = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in module.state_dict().items():
        if key.endswith(("lod", ".kernel")) or not value.is_floating_point():
            state[key] = value.clone()
        else:
            scale = 0.2 if key.endswith(("bias", "apply_noise.weight")) else 1.0
            state[key] = value + scale * torch.randn(value.shape, generator=generator)
    return state


def stylegan1_config(resolution: int = 32, w_dim: int = 16, z_dim: int = 16):
    from generators.stylegan import StyleGANConfig, default_fused_resolutions

    return StyleGANConfig(resolution, channels_for(resolution, 512, 32), z_dim=z_dim, w_dim=w_dim, mapping_layers=4,
                          mapping_hidden=w_dim, fused_resolutions=default_fused_resolutions(resolution))


def write_genforce_stylegan1(path: Path, resolution: int = 32, w_dim: int = 16, seed: int = 0) -> Path:
    """genforce StyleGAN (v1) as SeFa's zoo stores it: `{generator_smooth: state}` in `generators/stylegan.py` names."""
    from generators.stylegan import Generator as StyleGAN

    torch.manual_seed(seed)
    network = StyleGAN(stylegan1_config(resolution, w_dim))
    state = _perturbed(network, seed)
    state["truncation.w_avg"] = 0.1 * torch.randn(w_dim)
    torch.save({"generator_smooth": state}, path)
    return path


def write_genforce_pggan(path: Path, resolution: int = 32, z_dim: int = 16, seed: int = 0) -> Path:
    """genforce PGGAN: `layer0.weight` [channels, z_dim, 4, 4] is the dense first layer on z."""
    from generators.pggan import Generator as PGGAN, PGGANConfig

    torch.manual_seed(seed)
    network = PGGAN(PGGANConfig(resolution, channels_for(resolution, 512, 32), z_dim=z_dim))
    torch.save({"generator": _perturbed(network, seed)}, path)
    return path


# --------------------------------------------------------------------------- BigGAN

def biggan_state(z_dim: int = 8, num_classes: int = 10, ch: int = 2, num_blocks: int = 4, seed: int = 0) -> OrderedDict:
    """pytorch-pretrained-biggan layout: condition = cat(z, embed(class)); spectrally normalised linears."""
    torch.manual_seed(seed)
    cond = 2 * z_dim
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    state["embeddings.weight"] = torch.randn(z_dim, num_classes)
    state["generator.gen_z.weight_orig"] = torch.randn(4 * 4 * 16 * ch, cond)
    state["generator.gen_z.bias"] = torch.zeros(4 * 4 * 16 * ch)
    state["generator.gen_z.weight_u"] = torch.randn(4 * 4 * 16 * ch)
    state["generator.gen_z.weight_v"] = torch.randn(cond)
    index = 0
    for block in range(num_blocks):
        if block == num_blocks // 2:
            state[f"generator.layers.{index}.attention.weight_orig"] = torch.randn(ch, ch, 1, 1)
            index += 1
        width = 16 * ch
        for bn in range(4):
            for part in ("scale", "offset"):
                state[f"generator.layers.{index}.bn_{bn}.{part}.weight_orig"] = torch.randn(width, cond)
                state[f"generator.layers.{index}.bn_{bn}.{part}.weight_u"] = torch.randn(width)
                state[f"generator.layers.{index}.bn_{bn}.{part}.weight_v"] = torch.randn(cond)
            state[f"generator.layers.{index}.bn_{bn}.running_means"] = torch.zeros(51, width)
        state[f"generator.layers.{index}.conv_0.weight_orig"] = torch.randn(width // 4, width, 1, 1)
        index += 1
    state["generator.bn.running_means"] = torch.zeros(51, ch)
    return state


# --------------------------------------------------------------------------- NVIDIA pickles

MALICIOUS_SOURCE = "import pathlib\npathlib.Path({marker!r}).write_text('code from the pickle ran')\n"


def _install_fake_nvidia_modules() -> tuple[types.ModuleType, type]:
    """`torch_utils.persistence` and `dnnlib.util` as NVIDIA's pickles name them, so `pickle.dump` can
    refer to them. Only used to *write* test pickles."""
    if "torch_utils.persistence" in sys.modules and hasattr(sys.modules["torch_utils.persistence"], "_sefa_fake"):
        persistence = sys.modules["torch_utils.persistence"]
        return persistence, sys.modules["dnnlib.util"].EasyDict
    torch_utils = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - only our reader loads these
        raise RuntimeError("the fake persistence module must never be used to load")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    persistence._sefa_fake = True
    torch_utils.persistence = persistence
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    dnnlib.util = util
    dnnlib.EasyDict = EasyDict
    sys.modules.update({"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib, "dnnlib.util": util})
    return persistence, EasyDict


class _Persistent:
    """Pickles exactly like a `torch_utils.persistence` object: (_reconstruct_persistent_obj, (meta,))."""

    def __init__(self, class_name: str, module_src: str, state: dict) -> None:
        self.class_name, self.module_src, self.state = class_name, module_src, state

    def __reduce__(self):
        persistence = sys.modules["torch_utils.persistence"]
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=self.class_name, state=self.state)
        return (persistence._reconstruct_persistent_obj, (meta,))


def _persistent_tree(module: nn.Module, module_src: str, init_kwargs: dict | None = None) -> _Persistent:
    state = {
        "training": False,
        "_parameters": OrderedDict((k, nn.Parameter(v.detach().clone(), requires_grad=False)) for k, v in module._parameters.items() if v is not None),
        "_buffers": OrderedDict((k, v.detach().clone()) for k, v in module._buffers.items() if v is not None),
        "_modules": OrderedDict((k, _persistent_tree(v, module_src)) for k, v in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": init_kwargs or {},
    }
    for attr in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws"):
        if hasattr(module, attr):
            state[attr] = getattr(module, attr)
    return _Persistent(type(module).__name__, module_src, state)


def write_nvidia_pkl(path: Path, generator: Generator, marker: Path, extra: dict | None = None,
                     discriminator: nn.Module | None = None) -> Path:
    """Like `network-snapshot-*.pkl` of stylegan2-ada-pytorch: G, D, G_ema, training_set_kwargs, augment_pipe.

    The embedded module source would write `marker` if anyone executed it."""
    _, EasyDict = _install_fake_nvidia_modules()
    source = MALICIOUS_SOURCE.format(marker=str(marker))
    config = generator.config
    init_kwargs = EasyDict(
        z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim, img_resolution=config.img_resolution,
        img_channels=config.img_channels,
        mapping_kwargs=EasyDict(num_layers=config.mapping_layers),
        synthesis_kwargs=EasyDict(channel_base=512, channel_max=32, num_fp16_res=0, conv_clamp=config.conv_clamp),
    )
    tree = _persistent_tree(generator, source, init_kwargs)
    if discriminator is None:
        from generators.stylegan2_discriminator import Discriminator

        torch.manual_seed(1)
        discriminator = Discriminator(config.img_resolution, {r: min(512 // r * 4, 32) for r in config.block_resolutions})
    d_tree = _persistent_tree(discriminator, source, EasyDict(c_dim=0, img_resolution=config.img_resolution, img_channels=3))
    data = dict(G=tree, D=d_tree, G_ema=tree, training_set_kwargs=EasyDict(resolution=config.img_resolution), augment_pipe=None)
    data.update(extra or {})
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return path


class ShellCommand:
    """An object whose unpickling would run a shell command: the classic pickle exploit."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


# --------------------------------------------------------------------------- pSp / e4e

def write_psp(path: Path, encoder_type: str = "Encoder4Editing", resolution: int = 32, seed: int = 0,
              drop: str | None = None, opts: dict | None = None) -> Path:
    """A pSp/e4e checkpoint in the published container: `{'state_dict': {encoder.*, decoder.*}, 'latent_avg',
    'opts'}`, the decoder a rosinality StyleGAN2 with w_dim 512 (the encoder's heads are 512 wide). At 32 px
    the encoder has 8 style heads instead of the published 18; every key it has is named as published."""
    from generators.psp_encoder import PSPEncoderConfig, PSPEncoderNet

    generator = random_generator(small_config(resolution, z_dim=512, w_dim=512), seed=seed)
    torch.manual_seed(seed)
    encoder = PSPEncoderNet(PSPEncoderConfig(encoder_type, generator.num_ws))
    with torch.no_grad():
        for head in encoder.styles:
            head.linear.weight.mul_(0.05)  # codes of order 1, as a trained encoder's offsets
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    state.update((f"encoder.{k}", v) for k, v in encoder.state_dict().items())
    state.update((f"decoder.{k}", v) for k, v in rosinality_state(generator).items())
    if drop is not None:
        del state[drop]
    settings = {"encoder_type": encoder_type, "start_from_latent_avg": True, "stylegan_size": resolution,
                "checkpoint_path": None, "device": "cuda:0", "lpips_lambda": 0.8}
    settings.update(opts or {})
    torch.save({"state_dict": state, "latent_avg": generator.mapping.w_avg.clone(), "opts": settings}, path)
    return path
