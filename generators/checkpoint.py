"""Open any supported generator checkpoint safely and describe it in one structure.

Formats (detected from the file's bytes and contents, never from its name alone):
- `nvidia-pkl`: NVIDIA `stylegan2-ada-pytorch` / `stylegan3` pickles, via the restricted unpickler;
- `rosinality-pt`: rosinality `stylegan2-pytorch` `.pt` (`g_ema`, `latent_avg`);
- `genforce-pth`: genforce StyleGAN2 / StyleGAN / PGGAN `.pth` (`generator_smooth` / `generator`);
- `idinvert-pth`: In-Domain GAN Inversion's published StyleGAN generators (a bare state dict);
- `psp-pt`: pSp / e4e checkpoints: their rosinality StyleGAN2 `decoder` (the encoder is read by `-e`, or with `-g`);
- `biggan-pytorch`: `pytorch-pretrained-biggan` state dicts (rendered with the `config.json` beside them);
- `sefa-edit-pt`: this project's own StyleGAN2 files (`save_native`), e.g. the bundled example model.
Torch files are read with `torch.load(weights_only=True)`: tensors and plain containers only.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import torch

from common import atomic
from common.errors import UserError
from common.hashing import sha256_file
from common.regular_files import problem_with
from generators import biggan as biggan_network
from generators import pggan, reading_settings, stylegan, stylegan2_state, stylegan3
from generators.readers import biggan, genforce, idinvert, nvidia_pkl, psp, rosinality
from generators.state_layout import LayoutError, load_checked
from generators.stylegan2 import Generator, StyleGAN2Config
from generators.precision import reduced_dtype, set_precision
from generators.tensor_limits import CheckpointLimit, check_generator_shape, check_view_fits, check_zip_expansion, walk_tensors

# A legacy (pre-zip) torch.save file starts with a pickled magic number; NVIDIA pickles do not.
_LEGACY_TORCH_MAGIC = bytes.fromhex("8a0a6cfc9c46f9206aa85019")
NATIVE_FORMAT = "sefa-edit/stylegan2"


@dataclass
class LoadedCheckpoint:
    """A generator checkpoint read into tensors with known names, plus what was learned about it."""

    path: Path
    format: str  # nvidia-pkl | rosinality-pt | genforce-pth | idinvert-pth | biggan-pytorch | sefa-edit-pt
    architecture: str  # stylegan2 | stylegan3 | stylegan | pggan | biggan
    state: dict[str, torch.Tensor]  # NVIDIA names for stylegan2; the source's own names otherwise
    resolution: int
    latent_dim: int  # w_dim for style-based generators, z_dim for PGGAN / BigGAN
    num_latent_layers: int  # W+ entries (style-based), or latent-reading layer groups (PGGAN, BigGAN)
    latent_space: str  # "W+" or "Z"
    stylegan2_config: StyleGAN2Config | None = None
    # StyleGAN3, StyleGAN v1, PGGAN, BigGAN
    synthesis_config: (stylegan3.StyleGAN3Config | stylegan.StyleGANConfig | pggan.PGGANConfig
                       | biggan_network.BigGANConfig | None) = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    discriminator_state: dict[str, torch.Tensor] | None = None  # NVIDIA names; NVIDIA pickles and our own files
    discriminator_kwargs: dict[str, Any] = field(default_factory=dict)  # conv_clamp, mbstd_group_size, ... as built

    reading: dict[str, Any] = field(default_factory=dict)  # settings from the file beside it (reading_settings)

    @cached_property
    def sha256(self) -> str:
        """The identity outputs are fingerprinted with: the file's bytes, and the reading settings that
        change its images (none for almost every checkpoint: then the plain sha256 of the file)."""
        digest = sha256_file(self.path)
        if not self.reading:
            return digest
        text = json.dumps(self.reading, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{digest}:{text}".encode()).hexdigest()

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for k, t in self.state.items() if t.is_floating_point() and not _is_buffer_name(k))

    @property
    def can_render(self) -> bool:
        return self.stylegan2_config is not None or self.synthesis_config is not None

    def require_precision(self, precision: str) -> None:
        """A UserError, before any network is built, when this generator cannot render at `precision`: the
        networks that can are those offering `set_reduced_precision` (`generators/precision.py`)."""
        network = self._network_class()
        if reduced_dtype(precision) is not None and not callable(getattr(network, "set_reduced_precision", None)):
            raise UserError(f"{self.path}: --precision {precision}: a {self.architecture} generator renders in fp32 only "
                            f"(reduced precision follows NVIDIA's mixed precision, written for StyleGAN2 and StyleGAN3); "
                            f"use --precision fp32")

    def build_generator(self, device: torch.device | str = "cpu", precision: str = "fp32") -> torch.nn.Module:
        """The full network, with the interface of `generators/interface.py`, rendering at `precision`."""
        self.require_precision(precision)
        generator = self._build_generator(device)
        set_precision(generator, precision)
        return generator

    def _network_class(self) -> type | None:
        """The class of the network this checkpoint renders with (None: it cannot render)."""
        if self.stylegan2_config is not None:
            return Generator
        for config_type, network in ((stylegan3.StyleGAN3Config, stylegan3.Generator), (stylegan.StyleGANConfig, stylegan.Generator),
                                     (pggan.PGGANConfig, pggan.Generator), (biggan_network.BigGANConfig, biggan_network.Generator)):
            if isinstance(self.synthesis_config, config_type):
                return network
        return None

    def _build_generator(self, device: torch.device | str) -> torch.nn.Module:
        if self.stylegan2_config is not None:
            return stylegan2_state.load_into_generator(self.stylegan2_config, self.state).to(device)
        network = self._network_class()
        if network is not None:
            return load_checked(network(self.synthesis_config), self.state).eval().to(device)
        raise UserError(
            f"{self.path}: cannot render: {'; '.join(self.notes) or 'no synthesis network for ' + self.architecture}; "
            f"factorize works without rendering"
        )

    def build_discriminator(self, device: torch.device | str = "cpu"):
        """The StyleGAN2 discriminator stored with the generator, or None when the file has none we read."""
        if self.discriminator_state is None:
            return None
        from generators.stylegan2_discriminator import discriminator_from_state

        settings = self.discriminator_kwargs
        try:
            return discriminator_from_state(self.discriminator_state, settings.get("conv_clamp"),
                                            mbstd_group_size=settings.get("mbstd_group_size", 4)).to(device)
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"{self.path}: the discriminator in this checkpoint cannot be used ({exc})") from exc

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "path": str(self.path),
            "format": self.format,
            "architecture": self.architecture,
            "resolution": self.resolution,
            "latent_space": self.latent_space,
            "latent_dim": self.latent_dim,
            "num_latent_layers": self.num_latent_layers,
            "parameters": self.parameter_count,
            "discriminator": self.discriminator_state is not None,
        }
        if self.latent_space == "W+":
            info["num_ws"] = self.num_latent_layers
        if self.stylegan2_config is not None:
            config = self.stylegan2_config
            info.update(
                z_dim=config.z_dim,
                w_dim=config.w_dim,
                c_dim=config.c_dim,
                mapping_layers=config.mapping_layers,
                synthesis_architecture=config.architecture,
                conv_clamp=config.conv_clamp,
                num_fp16_res=config.num_fp16_res,
                channels={str(k): v for k, v in sorted(config.channels.items())},
            )
        if isinstance(self.synthesis_config, stylegan3.StyleGAN3Config):
            config = self.synthesis_config
            input_plan, layers = stylegan3.synthesis_plan(config)
            info.update(z_dim=config.z_dim, w_dim=config.w_dim, c_dim=config.c_dim, mapping_layers=config.mapping_layers,
                        config=f"StyleGAN3-{config.config_name}", conv_kernel=config.conv_kernel,
                        radial_filters=config.use_radial_filters, conv_clamp=config.conv_clamp,
                        output_scale=config.output_scale,
                        layers=[f"{plan.name}: sampling rate {plan.in_sampling_rate} -> {plan.out_sampling_rate}, "
                                f"up {plan.up_factor}, down {plan.down_factor}" for plan in layers])
        if isinstance(self.synthesis_config, stylegan.StyleGANConfig):
            config = self.synthesis_config
            info.update(z_dim=config.z_dim, w_dim=config.w_dim, mapping_layers=config.mapping_layers,
                        shared_w=config.repeat_w, final_tanh=config.final_tanh,
                        fused_upsampling=list(config.fused_resolutions),
                        channels={str(k): v for k, v in sorted(config.channels.items())})
        elif isinstance(self.synthesis_config, biggan_network.BigGANConfig):
            config = self.synthesis_config
            info.update(z_dim=config.z_dim, num_classes=config.num_classes, channel_width=config.channel_width,
                        blocks=[f"{'up ' if up else ''}{config.channel_width * a}->{config.channel_width * b}"
                                for up, a, b in config.layers],
                        attention_before_block=config.attention_layer_position, truncation_rows=config.n_stats)
        elif isinstance(self.synthesis_config, pggan.PGGANConfig):
            info.update(z_dim=self.synthesis_config.z_dim,
                        channels={str(k): v for k, v in sorted(self.synthesis_config.channels.items())})
        info.update(self.extra)
        if self.notes:
            info["notes"] = list(self.notes)
        return info


def _is_buffer_name(name: str) -> bool:
    return name.endswith(("resample_filter", "noise_const", "w_avg", ".noise", ".kernel", "weight_u", "weight_v", "lod",
                          "magnitude_ema", "up_filter", "down_filter", "input.freqs", "input.phases", "input.transform",
                          "running_means", "running_vars"))


# The last checkpoint read, keyed by the file's identity: `run` hands one file to four stages, and a
# 1024 px checkpoint costs seconds to unpickle, validate and hash. A rewritten file has a new key.
_last_loaded: tuple[tuple, LoadedCheckpoint] | None = None


def load_checkpoint(path: Path | str) -> LoadedCheckpoint:
    """Read and identify a checkpoint; every failure is a UserError naming the file and what was expected.

    Reading the same unchanged file again returns the same object (treat it as read-only)."""
    global _last_loaded
    path = Path(path)
    try:
        stat = path.stat()
        settings = reading_settings.settings_path(path)
        settings_stat = settings.stat() if settings.exists() else None
        config = biggan.config_path(path)  # a BigGAN's config.json beside it
        config_stat = config.stat() if config is not None else None
        key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns,
               settings_stat and (settings_stat.st_ino, settings_stat.st_size, settings_stat.st_mtime_ns),
               config_stat and (str(config), config_stat.st_ino, config_stat.st_size, config_stat.st_mtime_ns))
    except OSError:
        key = None
    if key is not None and _last_loaded is not None and _last_loaded[0] == key:
        return _last_loaded[1]
    loaded = _read_checkpoint(path)
    if key is not None:
        _last_loaded = (key, loaded)
    return loaded


def _read_checkpoint(path: Path) -> LoadedCheckpoint:
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint file; pass the path of a generator .pkl/.pt/.pth")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; pass the checkpoint file itself")
    problem = problem_with(path)
    if problem is not None:
        raise UserError(f"{path}: {problem}; pass the checkpoint file itself")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty; re-download or re-export the checkpoint")
    with open(path, "rb") as handle:
        head = handle.read(16)
    try:
        if head.startswith(b"PK\x03\x04") or _LEGACY_TORCH_MAGIC in head:
            return _from_torch_file(path)
        if head[:1] == b"\x80":
            return _from_nvidia_pickle(path)
    except UserError:
        raise
    except CheckpointLimit as exc:
        raise UserError(f"{path}: not a usable checkpoint: {exc}; do not use this file") from exc
    except (EOFError, zipfile.BadZipFile, RuntimeError) as exc:
        raise UserError(f"{path}: the file is truncated or corrupt ({_first_line(exc)}); download it again") from exc
    except Exception as exc:  # pickle / shape / key errors from a file that is not what it claims
        raise UserError(f"{path}: not a readable generator checkpoint ({_first_line(exc)})") from exc
    raise UserError(
        f"{path}: unknown file format (not a PyTorch file nor a Python pickle); expected an NVIDIA .pkl, "
        f"a rosinality .pt, a genforce .pth, or a pytorch-pretrained-biggan .bin"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _from_nvidia_pickle(path: Path) -> LoadedCheckpoint:
    try:
        networks = nvidia_pkl.read_networks(path)
    except nvidia_pkl.NotANetworkPickle as exc:
        raise UserError(f"{path}: not an NVIDIA network pickle: {exc}") from exc
    if any(key.startswith("synthesis.input.") for key in networks.g_state):
        return _stylegan3(path, networks)
    loaded = _stylegan2(path, "nvidia-pkl", networks.g_state, networks.g_init_kwargs,
                        notes=[f"weights taken from '{networks.network_key}'", f"network source: {networks.source_file}"])
    loaded.discriminator_state, loaded.discriminator_kwargs = networks.d_state, dict(networks.d_settings)
    return loaded


def _stylegan3(path: Path, networks: nvidia_pkl.NetworkPickle) -> LoadedCheckpoint:
    """An alias-free generator: its architecture is its constructor kwargs (checked against the tensors)."""
    try:
        config = stylegan3.config_from_kwargs(networks.g_kwargs)
        _, layers = stylegan3.synthesis_plan(config)
        widest = max(plan.out_channels for plan in layers)
        check_generator_shape({config.img_resolution: widest}, config.z_dim, config.w_dim, config.img_resolution,
                              config.mapping_layers)
        if "mapping.w_avg" not in networks.g_state:
            raise KeyError("mapping.w_avg")
        load_checked(stylegan3.Generator(config), networks.g_state)
    except CheckpointLimit as exc:
        raise UserError(f"{path}: not a usable checkpoint: {exc}; do not use this file") from exc
    except (LayoutError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: inconsistent StyleGAN3 weights or settings: {_first_line(exc)}") from exc
    loaded = LoadedCheckpoint(
        path, "nvidia-pkl", "stylegan3", dict(networks.g_state), config.img_resolution, config.w_dim, config.num_ws,
        "W+", synthesis_config=config,
        notes=[f"weights taken from '{networks.network_key}'", f"network source: {networks.source_file}",
               f"StyleGAN3-{config.config_name}"],
    )
    loaded.discriminator_state, loaded.discriminator_kwargs = networks.d_state, dict(networks.d_settings)
    return loaded


def _from_torch_file(path: Path) -> LoadedCheckpoint:
    with open(path, "rb") as handle:
        check_zip_expansion(handle, path.stat().st_size, "the file")
    # rosinality training checkpoints pickle their argparse options; Namespace only sets attributes.
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            message = _first_line(exc)
            if "weights_only" in str(exc) or "Unsupported global" in str(exc):
                raise UserError(
                    f"{path}: contains Python objects that cannot be loaded safely ({message.split(chr(10))[0][:160]}); "
                    f"re-save just the state dict"
                ) from exc
            raise
    if not isinstance(data, Mapping):
        raise UserError(f"{path}: holds a {type(data).__name__}, expected a dict of weights")
    for tensor in walk_tensors(data):
        check_view_fits(tensor, "a stored tensor")

    if data.get("format") == NATIVE_FORMAT:
        config = StyleGAN2Config(**{**data["config"], "resample_taps": tuple(data["config"]["resample_taps"])})
        loaded = _stylegan2(path, "sefa-edit-pt", dict(data["G_ema"]), {}, config=config)
        if isinstance(data.get("D"), Mapping):
            loaded.discriminator_state = dict(data["D"])
        return loaded

    if psp.is_psp_checkpoint(data):
        return _from_psp(path, data)

    if isinstance(data.get("g_ema"), Mapping) or rosinality.is_rosinality_state(data):
        state = data["g_ema"] if isinstance(data.get("g_ema"), Mapping) else data
        latent_avg = data.get("latent_avg")
        try:
            converted = rosinality.to_nvidia_state(state, latent_avg if isinstance(latent_avg, torch.Tensor) else None)
        except KeyError as exc:
            raise UserError(f"{path}: rosinality checkpoint is incomplete or unusual: missing/unknown {exc}") from exc
        notes = []
        if "mapping.w_avg" not in converted:
            notes.append("no latent_avg in the file: mean W estimated from 10,000 random z")
        return _stylegan2(path, "rosinality-pt", converted, {}, notes=notes)

    genforce_state = genforce.find_generator_state(data)
    if genforce_state is not None:
        return _from_genforce(path, genforce_state)

    if biggan.is_biggan_state(data):
        return _from_biggan(path, data)

    if "synthesis.b4.const" in data and "mapping.fc0.weight" in data:
        return _stylegan2(path, "nvidia-state-dict", dict(data), {})

    if idinvert.is_generator_state(data):
        return _from_idinvert(path, data)
    if idinvert.is_encoder_state(data):
        raise UserError(f"{path}: an In-Domain GAN Inversion encoder, not a generator; pass it with --encoder/-e "
                        f"and its generator (styleganinv_*_generator.pth) with -g")

    keys = sorted(map(str, data))[:6]
    raise UserError(
        f"{path}: unrecognised checkpoint contents (top-level keys {keys}); expected NVIDIA, rosinality, genforce "
        f"or pytorch-pretrained-biggan weights"
    )


def _stylegan2(
    path: Path,
    format_name: str,
    state: dict[str, torch.Tensor],
    init_kwargs: Mapping[str, Any],
    config: StyleGAN2Config | None = None,
    notes: list[str] | None = None,
) -> LoadedCheckpoint:
    try:
        config = config or stylegan2_state.infer_config(state, init_kwargs)
        check_generator_shape(config.channels, config.z_dim, config.w_dim, config.img_resolution, config.mapping_layers)
        if "mapping.w_avg" not in state:
            state["mapping.w_avg"] = _estimate_w_avg(config, state)
        stylegan2_state.load_into_generator(config, state)  # validates names and shapes now, not at first use
    except CheckpointLimit as exc:
        raise UserError(f"{path}: not a usable checkpoint: {exc}; do not use this file") from exc
    except (stylegan2_state.StateMismatch, ValueError, KeyError) as exc:
        raise UserError(f"{path}: inconsistent StyleGAN2 weights: {_first_line(exc)}") from exc
    return LoadedCheckpoint(
        path=path,
        format=format_name,
        architecture="stylegan2",
        state=state,
        resolution=config.img_resolution,
        latent_dim=config.w_dim,
        num_latent_layers=config.num_ws,
        latent_space="W+",
        stylegan2_config=config,
        notes=list(notes or []),
    )


@torch.no_grad()
def _estimate_w_avg(config: StyleGAN2Config, state: Mapping[str, torch.Tensor], samples: int = 10_000) -> torch.Tensor:
    """Mean of mapping(z) over a fixed set of z, for checkpoints that do not store the running average."""
    from generators.stylegan2 import MappingNetwork

    mapping = MappingNetwork(config)
    mapping_state = {k[len("mapping.") :]: v for k, v in state.items() if k.startswith("mapping.")}
    mapping_state["w_avg"] = torch.zeros(config.w_dim)
    mapping.load_state_dict({k: v.float() for k, v in mapping_state.items()})
    generator = torch.Generator().manual_seed(0)
    z = torch.randn([samples, config.z_dim], generator=generator)
    c = torch.zeros([samples, config.c_dim]) if config.c_dim else None
    return mapping(z, c)[:, 0].mean(dim=0)


def _from_genforce(path: Path, state: Mapping[str, torch.Tensor]) -> LoadedCheckpoint:
    architecture = genforce.detect_architecture(state)
    if architecture == "stylegan2":
        try:
            converted = genforce.stylegan2_to_nvidia(state)
        except KeyError as exc:
            raise UserError(f"{path}: genforce StyleGAN2 checkpoint not supported: {str(exc).strip(chr(34))}") from exc
        return _stylegan2(path, "genforce-pth", converted, {})
    try:
        if architecture == "stylegan":
            return _genforce_stylegan(path, state)
        if architecture == "pggan":
            config = genforce.pggan_config(state)
            return _synthesis_checkpoint(path, "genforce-pth", "pggan", dict(state), config)
    except (LayoutError, ValueError) as exc:
        raise UserError(f"{path}: not a usable genforce {architecture} checkpoint: {exc}") from exc
    raise UserError(f"{path}: genforce checkpoint of an unknown generator type (no early_layer, style or layer0 weights)")


def _genforce_stylegan(path: Path, state: Mapping[str, torch.Tensor]) -> LoadedCheckpoint:
    """genforce StyleGAN v1, whose `fused_scale` the tensors cannot tell: the settings file beside it
    says, or SeFa's zoo setting is assumed and the user told so (`generators.reading_settings`)."""
    settings = reading_settings.read_settings(path)
    fused_scale = settings.get("fused_scale", "auto")
    loaded = _synthesis_checkpoint(path, "genforce-pth", "stylegan", dict(state), genforce.stylegan_config(state, fused_scale))
    source = reading_settings.settings_path(path).name
    if "fused_scale" in settings:
        loaded.reading = {"fused_scale": fused_scale}
        loaded.notes.append(f"fused_scale={fused_scale!r}, as {source} says")
    else:
        assumption = (f"assuming fused_scale='auto', SeFa's model-zoo setting (the tensors cannot tell); a network "
                      f"trained with another one renders differently: say so in {source}, e.g. {{\"fused_scale\": true}}")
        loaded.notes.append(assumption)
        reading_settings.say_once(path, assumption)
    return loaded


def _from_psp(path: Path, data: Mapping[str, Any]) -> LoadedCheckpoint:
    """The generator inside a pSp / e4e file; what `models info` says of its encoder comes along in `extra`."""
    try:
        parts = psp.split(data)
        latent_avg = parts.latent_avg.reshape(-1, parts.latent_avg.shape[-1]).mean(dim=0) if parts.latent_avg is not None else None
        converted = rosinality.to_nvidia_state(parts.decoder_state, latent_avg)
    except (LayoutError, KeyError) as exc:
        raise UserError(f"{path}: not a usable pSp/e4e checkpoint: {_first_line(exc)}") from exc
    loaded = _stylegan2(path, "psp-pt", converted, {}, notes=[f"generator: the {parts.name} checkpoint's decoder (rosinality StyleGAN2)"])
    num_ws = len({key.split(".")[1] for key in parts.encoder_state if key.startswith("styles.")})
    loaded.extra.update(encoder=parts.name, encoder_type=parts.encoder_type, encoder_input=[3, 256, 256],
                        encoder_codes=[num_ws, loaded.latent_dim])
    return loaded


def _from_idinvert(path: Path, state: Mapping[str, torch.Tensor]) -> LoadedCheckpoint:
    try:
        config, converted = idinvert.read_generator(state)
        loaded = _synthesis_checkpoint(path, "idinvert-pth", "stylegan", converted, config)
    except (LayoutError, ValueError) as exc:
        raise UserError(f"{path}: not a usable In-Domain GAN Inversion generator: {exc}") from exc
    loaded.extra["truncation"] = {"psi": idinvert.TRUNCATION_PSI, "layers": idinvert.TRUNCATION_LAYERS}
    return loaded


def _synthesis_checkpoint(path: Path, format_name: str, architecture: str, state: dict[str, torch.Tensor],
                          config: stylegan.StyleGANConfig | pggan.PGGANConfig) -> LoadedCheckpoint:
    """A StyleGAN v1 or PGGAN checkpoint, its layout checked against the network now rather than at first use.

    (Building it on torch's meta device would allocate nothing, but imports 2 s of torch machinery.)"""
    sizes = list(config.channels.values()) + [config.z_dim, getattr(config, "w_dim", config.z_dim)]
    if max(sizes) > 4096 or config.img_resolution > 4096:
        raise UserError(f"{path}: not a usable checkpoint: declares sizes up to {max(sizes)} at {config.img_resolution} px")
    network = stylegan.Generator(config) if architecture == "stylegan" else pggan.Generator(config)
    load_checked(network, state)
    is_style = architecture == "stylegan"
    return LoadedCheckpoint(
        path, format_name, architecture, state, config.img_resolution,
        config.w_dim if is_style else config.z_dim, config.num_ws if is_style else 1, "W+" if is_style else "Z",
        synthesis_config=config,
    )


def _from_biggan(path: Path, state: Mapping[str, torch.Tensor]) -> LoadedCheckpoint:
    """The state dict is enough for SeFa; rendering also needs the config.json published beside it."""
    try:
        layout = biggan.read_layout(state)
    except KeyError as exc:
        raise UserError(f"{path}: BigGAN weights are incomplete: {exc}") from exc
    loaded = LoadedCheckpoint(
        path,
        "biggan-pytorch",
        "biggan",
        dict(state),
        layout.resolution,
        layout.z_dim,
        1 + len(layout.block_indices),
        "Z",
        extra={"num_classes": layout.num_classes, "class_embed_dim": layout.embed_dim},
    )
    config_file = biggan.config_path(path)
    if config_file is None:
        loaded.notes.append(f"no config.json beside {path.name} (pytorch-pretrained-biggan publishes one with the weights), "
                            f"so its blocks' upsampling is unknown")
        return loaded
    try:
        data = biggan.read_config(config_file)
        config = biggan_network.BigGANConfig.from_json(data)
        if (config.z_dim, config.num_classes) != (layout.z_dim, layout.num_classes):
            raise ValueError(f"it declares z_dim {config.z_dim} and {config.num_classes} classes, the weights have "
                             f"{layout.z_dim} and {layout.num_classes}")
        load_checked(biggan_network.Generator(config), state)
    except (ValueError, LayoutError) as exc:
        raise UserError(f"{config_file}: does not describe the BigGAN weights in {path.name}: {_first_line(exc)}") from exc
    loaded.synthesis_config, loaded.resolution = config, config.output_dim
    loaded.reading = {"config.json": data}
    loaded.extra.update(config=config_file.name, truncation="z from a normal truncated to [-2, 2], times t in (0, 1]")
    return loaded


def save_native(path: Path, generator: Generator, discriminator: torch.nn.Module | None = None) -> Path:
    """Write a StyleGAN2 generator (and optionally its discriminator) in this project's format."""
    config = dataclasses.asdict(generator.config)
    config["resample_taps"] = list(config["resample_taps"])
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    payload = {"format": NATIVE_FORMAT, "config": config, "G_ema": state}
    if discriminator is not None:
        payload["D"] = {k: v.detach().cpu().clone() for k, v in discriminator.state_dict().items()}

    def write(handle: Any) -> None:
        torch.save(payload, handle)

    return atomic.write_with(Path(path), write)
