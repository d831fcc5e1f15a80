"""Rebuild the reference checkpoints of ../shared/reference in their real on-disk layouts.

Each case's `_params.npz` holds every tensor under the reference's own names; its `_config.json` says
how the original code saved them. These writers follow that: an NVIDIA training-snapshot pickle of
persistent objects (module source embedded, as `torch_utils.persistence` writes it; here a stand-in
text that names the source file and would run a payload if anyone executed it), rosinality's
`{'g_ema', 'latent_avg'}` and genforce's `{'generator_smooth'}` / `{'generator'}`.
"""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tests import checkpoint_factories as factories
from tests.conftest import SHARED

REFERENCE = SHARED / "reference"
BUFFER_SUFFIXES = ("resample_filter", "noise_const", "w_avg", "magnitude_ema", "up_filter", "down_filter",
                   "transform", "freqs", "phases")

# What `module_src` looks like to our reader: the marker text of each NVIDIA file, plus code that
# would leave a file behind if the pickle's source were executed.
ADA_SOURCE = "# training/networks.py (stylegan2-ada-pytorch)\nclass SynthesisNetwork: pass\nopen({marker!r}, 'w').write('ran')\n"
STYLEGAN3_SOURCE = ("# training/networks_stylegan3.py\nclass SynthesisInput: pass\n"
                    "open({marker!r}, 'w').write('ran')\n")
STYLEGAN3_REPO_SOURCE = ('"""Matches ... https://github.com/NVlabs/stylegan2/blob/master/training/networks_stylegan2.py"""\n'
                         "class SynthesisNetwork: pass\nopen({marker!r}, 'w').write('ran')\n")


def load_case(case: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, np.ndarray]]:
    with np.load(REFERENCE / f"{case}_params.npz") as data:
        params = {k: torch.from_numpy(data[k].copy()) for k in data.files}
    config = json.loads((REFERENCE / f"{case}_config.json").read_text())
    with np.load(REFERENCE / f"{case}_expected.npz") as data:
        expected = {k: data[k].copy() for k in data.files}
    return params, config, expected


def close(actual: torch.Tensor, expected: np.ndarray, atol: float) -> None:
    """Parity within an absolute tolerance (the fixtures' README gives one per quantity)."""
    np.testing.assert_allclose(actual.detach().cpu().numpy(), expected, rtol=0, atol=atol)


def strip(params: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def _nested(flat: dict[str, torch.Tensor]) -> dict:
    tree: dict = {}
    for name, tensor in flat.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = tensor
    return tree


def _persistent(node: dict, class_name: str, module_src: str, init_kwargs: dict | None = None) -> factories._Persistent:
    """One persistent network object with its submodules, parameters and buffers where NVIDIA keeps them."""
    parameters, buffers, modules = OrderedDict(), OrderedDict(), OrderedDict()
    for name, value in node.items():
        if isinstance(value, dict):
            modules[name] = _persistent(value, "Module", module_src)
        elif name.endswith(BUFFER_SUFFIXES):
            buffers[name] = value
        else:
            parameters[name] = nn.Parameter(value, requires_grad=False)
    state = {"training": False, "_parameters": parameters, "_buffers": buffers, "_modules": modules,
             "_init_args": (), "_init_kwargs": init_kwargs or {}}
    return factories._Persistent(class_name, module_src, state)


def write_nvidia_snapshot(path: Path, params: dict[str, torch.Tensor], g_kwargs: dict, d_kwargs: dict | None,
                          marker: Path, source: str = ADA_SOURCE) -> Path:
    """`pickle.dump(dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None))` of persistent objects."""
    _, easy_dict = factories._install_fake_nvidia_modules()

    def easy(value: Any) -> Any:
        return easy_dict({k: easy(v) for k, v in value.items()}) if isinstance(value, dict) else value

    module_src = source.format(marker=str(marker))
    generator = _persistent(_nested(strip(params, "G_ema.")), "Generator", module_src, easy(g_kwargs))
    discriminator = None
    if d_kwargs is not None:
        discriminator = _persistent(_nested(strip(params, "D.")), "Discriminator", module_src, easy(d_kwargs))
    data = dict(G=generator, D=discriminator, G_ema=generator, augment_pipe=None, training_set_kwargs=None)
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=4)
    return path


def nvidia_kwargs(config: dict, network: str) -> dict | None:
    kwargs = config[f"{network}_kwargs"]
    if kwargs is None:
        return None
    return {**{k: v for k, v in kwargs.items() if k != "class_name"}, **config["common_kwargs"]}


def write_rosinality(path: Path, params: dict[str, torch.Tensor]) -> Path:
    torch.save({"g_ema": strip(params, "g_ema."), "latent_avg": params["latent_avg"]}, path)
    return path


def write_genforce(path: Path, params: dict[str, torch.Tensor], network: str) -> Path:
    key = "generator" if network == "pggan" else "generator_smooth"
    torch.save({key: strip(params, f"{network}.{key}.")}, path)
    return path


def write_idinvert(folder: Path, params: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    """The two published files of `styleganinv_*`: bare state dicts, in the stored order, the generator
    without `truncation.truncation` (as genforce's converter saves it), the encoder with its int64
    `num_batches_tracked` counters (README-idinvert.md, "How to use")."""
    generator = OrderedDict((k, v) for k, v in strip(params, "generator.").items() if k != "truncation.truncation")
    encoder = OrderedDict(strip(params, "encoder.").items())
    generator_path, encoder_path = folder / "styleganinv_tiny128_generator.pth", folder / "styleganinv_tiny128_encoder.pth"
    torch.save(generator, generator_path)
    torch.save(encoder, encoder_path)
    return generator_path, encoder_path
