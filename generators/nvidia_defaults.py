"""Constructor defaults of NVIDIA's StyleGAN2 classes, which their pickles do not store.

A pickle keeps the keyword arguments a network was built with, not the class defaults it fell back
on. The same class names have different defaults in the two repositories: in stylegan2-ada-pytorch
(`training/networks.py`) `conv_clamp` is None and `num_fp16_res` 0 unless given, while in the stylegan3
repository (`training/networks_stylegan2.py`, which wrote e.g. the published `stylegan2-ffhqu-*.pkl`)
`SynthesisBlock` clamps at 256 and `SynthesisNetwork` / `Discriminator` use `num_fp16_res=4`, and the
generator takes its synthesis arguments flat. Dropping a clamp that the original applied changes the
images wherever activations exceed it.
"""

from __future__ import annotations

from typing import Any, Mapping

CLASS_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("stylegan2-ada/networks.py", "Generator"): {"conv_clamp": None, "num_fp16_res": 0},
    ("stylegan2-ada/networks.py", "Discriminator"): {"conv_clamp": None, "num_fp16_res": 0},
    ("stylegan3/networks_stylegan2.py", "Generator"): {"conv_clamp": 256, "num_fp16_res": 4},
    ("stylegan3/networks_stylegan2.py", "Discriminator"): {"conv_clamp": 256, "num_fp16_res": 4},
    # StyleGAN3's own generator: its remaining defaults are those of `generators.stylegan3.StyleGAN3Config`.
    ("stylegan3/networks_stylegan3.py", "Generator"): {"conv_clamp": 256, "num_fp16_res": 4},
}
EPILOGUE_DEFAULTS = {"mbstd_group_size": 4, "mbstd_num_channels": 1}  # the same in both repositories


def _family(source_file: str, init_kwargs: Mapping[str, Any], class_name: str) -> str:
    """The source file, or when the source was not recognised, a guess from how the kwargs are laid out:
    only the stylegan3 repository's Generator takes its synthesis arguments flat."""
    if (source_file, class_name) in CLASS_DEFAULTS:
        return source_file
    if class_name == "Generator" and "synthesis_kwargs" not in init_kwargs and "channel_base" in init_kwargs:
        return "stylegan3/networks_stylegan2.py"
    return "stylegan2-ada/networks.py"


def generator_synthesis_kwargs(source_file: str, init_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The synthesis arguments the generator was really built with: stored values, else class defaults."""
    family = _family(source_file, init_kwargs, "Generator")
    stored = dict(init_kwargs.get("synthesis_kwargs") or {}) if "synthesis_kwargs" in init_kwargs else \
        {k: v for k, v in init_kwargs.items() if k not in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")}
    return {**CLASS_DEFAULTS[(family, "Generator")], **stored}


def discriminator_settings(source_file: str, init_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """conv_clamp (block_kwargs override the top level, as NVIDIA's constructor merges them) and the
    minibatch-stddev group size and channel count of the epilogue."""
    family = _family(source_file, init_kwargs, "Discriminator")
    defaults = CLASS_DEFAULTS[(family, "Discriminator")]
    block = dict(init_kwargs.get("block_kwargs") or {})
    epilogue = {**EPILOGUE_DEFAULTS, **dict(init_kwargs.get("epilogue_kwargs") or {})}
    return {
        "conv_clamp": block.get("conv_clamp", init_kwargs.get("conv_clamp", defaults["conv_clamp"])),
        "num_fp16_res": init_kwargs.get("num_fp16_res", defaults["num_fp16_res"]),
        "mbstd_group_size": epilogue["mbstd_group_size"],
        "mbstd_num_channels": epilogue["mbstd_num_channels"],
    }
