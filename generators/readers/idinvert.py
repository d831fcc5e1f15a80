"""In-Domain GAN Inversion's published checkpoints (genforce/idinvert_pytorch, `styleganinv_*`).

Each published file is a bare state dict saved with `torch.save` (no wrapper, no `module.` prefix):
`styleganinv_ffhq256_generator.pth` and `styleganinv_ffhq256_encoder.pth`. The reference loads them
strictly, so we accept exactly its layout, read the architecture off the shapes, and name any key
that is missing, misshapen or unknown. Two exceptions, as in the reference loader: the generator's
`truncation.truncation` (overwritten by the reference from its settings, dropped by its converter)
may be absent or hold anything, and BatchNorm `num_batches_tracked` counters may be absent.

Generator layout, renamed here onto `generators/stylegan.py` (genforce/SeFa names):
  mapping.dense{i}.fc.weight / .wscale.bias           -> mapping.dense{i}.weight / .bias
  synthesis.layer{i}.epilogue.{bias, apply_noise.*}   -> synthesis.layer{i}.{bias, apply_noise.*}
  synthesis.layer{i}.epilogue.style_mod.dense.fc.weight / .wscale.bias -> synthesis.layer{i}.style.weight / .bias
  synthesis.layer{i}.conv.weight [out, in, 3, 3]      -> synthesis.layer{i}.weight
  synthesis.layer{i}.weight [3, 3, in, out] (fused up-conv, TensorFlow order) -> permuted to [out, in, 3, 3]
  synthesis.output{b}.conv.weight                     -> synthesis.output{b}.weight
Its settings (model_settings.py): `repeat_w=False` (the mapping's last layer outputs every W+ entry),
`final_tanh=True`, `fused_scale='auto'` (transposed conv from 128 px), truncation psi 0.7 on layers 0-7.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from generators.readers.genforce import read_style_shapes
from generators.state_layout import LayoutError, check_layout
from generators.stylegan import StyleGANConfig

GENERATOR_MARKER = "synthesis.layer0.epilogue.style_mod.dense.fc.weight"
ENCODER_MARKERS = ("block0.conv.weight", "block0.bn.bn.running_mean")
IGNORED_GENERATOR_KEYS = ("truncation.truncation",)
TRUNCATION_PSI, TRUNCATION_LAYERS = 0.7, 8  # the published sampling settings (model_settings.py:32-34)



def is_generator_state(state: Mapping[str, object]) -> bool:
    return GENERATOR_MARKER in state


def is_encoder_state(state: Mapping[str, object]) -> bool:
    return all(key in state for key in ENCODER_MARKERS)


def generator_config(state: Mapping[str, torch.Tensor]) -> StyleGANConfig:
    """The architecture, read off the shapes (any resolution, widths and latent sizes)."""
    shapes = read_style_shapes(state, "synthesis.layer{i}.epilogue.style_mod.dense.fc.weight", "mapping.dense{i}.fc.weight",
                               "synthesis.layer{i}.epilogue.bias")
    w_dim, num_ws, mapping_out = shapes.w_dim, shapes.num_ws, shapes.mapping_out
    if mapping_out not in (w_dim, w_dim * num_ws):
        raise LayoutError(f"key mapping.dense{shapes.mapping_layers - 1}.fc.weight outputs {mapping_out} values; "
                          f"expected {w_dim} or {w_dim * num_ws}")
    # a fused (transposed-conv) up layer stores `layerN.weight`; the others `layerN.conv.weight`
    fused = tuple(4 << b for b in range(1, num_ws // 2) if f"synthesis.layer{2 * b}.weight" in state)
    return StyleGANConfig(
        img_resolution=shapes.resolution, channels=shapes.channels, z_dim=shapes.z_dim, w_dim=w_dim,
        mapping_layers=shapes.mapping_layers, mapping_hidden=shapes.mapping_hidden, repeat_w=mapping_out == w_dim,
        final_tanh=True, fused_resolutions=fused,
    )


def expected_generator_layout(config: StyleGANConfig) -> dict[str, tuple[int, ...]]:
    """Every key and shape the reference `StyleGANGeneratorNet` has for this configuration, in its order."""
    layout: dict[str, tuple[int, ...]] = {}
    widths = [config.z_dim] + [config.mapping_hidden] * (config.mapping_layers - 1) + [config.mapping_out]
    for i in range(config.mapping_layers):
        layout[f"mapping.dense{i}.fc.weight"] = (widths[i + 1], widths[i])
        layout[f"mapping.dense{i}.wscale.bias"] = (widths[i + 1],)
    layout["truncation.w_avg"] = (config.w_dim,)
    layout["truncation.truncation"] = (1, config.num_ws, 1)
    layout["synthesis.lod"] = ()
    for block, res in enumerate(config.block_resolutions):
        nf = config.channels[res]
        for index in (2 * block, 2 * block + 1):
            prefix = f"synthesis.layer{index}"
            if index == 0:
                layout[f"{prefix}.const"] = (1, nf, 4, 4)
            elif index % 2 == 0 and res in config.fused_resolutions:
                layout[f"{prefix}.weight"] = (3, 3, config.channels[res // 2], nf)
            else:
                layout[f"{prefix}.conv.weight"] = (nf, config.channels[res // 2] if index % 2 == 0 else nf, 3, 3)
            if index % 2 == 0 and index > 0:
                layout[f"{prefix}.blur.kernel"] = (nf, 1, 3, 3)
            layout[f"{prefix}.epilogue.bias"] = (nf,)
            layout[f"{prefix}.epilogue.apply_noise.weight"] = (nf,)
            layout[f"{prefix}.epilogue.apply_noise.noise"] = (1, 1, res, res)
            layout[f"{prefix}.epilogue.style_mod.dense.fc.weight"] = (2 * nf, config.w_dim)
            layout[f"{prefix}.epilogue.style_mod.dense.wscale.bias"] = (2 * nf,)
        layout[f"synthesis.output{block}.conv.weight"] = (config.img_channels, nf, 1, 1)
        layout[f"synthesis.output{block}.bias"] = (config.img_channels,)
    return layout


def read_generator(state: Mapping[str, torch.Tensor]) -> tuple[StyleGANConfig, dict[str, torch.Tensor]]:
    """Check the published layout exactly and rename it onto `generators/stylegan.py`'s names."""
    config = generator_config(state)
    layout = expected_generator_layout(config)
    check_layout(state, layout, optional=IGNORED_GENERATOR_KEYS, ignored=IGNORED_GENERATOR_KEYS)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key in IGNORED_GENERATOR_KEYS:
            continue
        name = key.replace(".epilogue.style_mod.dense.fc.", ".style.").replace(".epilogue.style_mod.dense.wscale.", ".style.")
        name = name.replace(".epilogue.", ".").replace(".fc.weight", ".weight").replace(".wscale.bias", ".bias")
        name = name.replace(".conv.weight", ".weight")
        if re.fullmatch(r"synthesis\.layer\d+\.weight", key):  # fused up-conv, TensorFlow [kh, kw, in, out]
            tensor = tensor.permute(3, 2, 0, 1).contiguous()
        out[name] = tensor
    return config, out
