"""`sefa-edit train-encoder`: train the domain-guided encoder for one generator.

Every step draws W+ codes from the generator (mapping of seeded z, half of them style-mixed so the
encoder sees codes that differ per layer), renders them, and trains E to give back the codes
(latent loss) and codes that re-render the same images (pixel + LPIPS). With `--data`, real aligned
photos add reconstruction terms, so E(x) lands in the generator's domain for photos too.
Sampling is seeded by the step number and the optimiser state is checkpointed with the weights, so
an interrupted run resumes to the very same result.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from common import atomic
from common.devices import resolve_device
from common.errors import UserError
from common.json_files import parse_json_text
from common.photo_io import find_images
from common.progress import track
from generators.checkpoint import load_checkpoint
from generators.interface import LatentGenerator
from inversion.encoder import Encoder, EncoderConfig, load_encoder_file, save_encoder
from inversion.perceptual import LPIPS, choose_perceptual, find_vgg_weights
from inversion.worker import load_target


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    lambda_latent: float = 1.0
    lambda_image: float = 1.0
    lambda_perceptual: float = 0.8
    lambda_adversarial: float = 0.08
    mixing_probability: float = 0.5
    checkpoint_every: int = 100
    seed: int = 0


def sample_codes(generator: LatentGenerator, batch: int, step: int, settings: TrainSettings, device: torch.device) -> torch.Tensor:
    rng = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
    z = torch.randn([2, batch, generator.z_dim], generator=rng).to(device)
    mix = torch.rand([batch], generator=rng) < settings.mixing_probability
    cutoff = torch.randint(1, generator.num_ws, [batch], generator=rng)
    with torch.no_grad():
        ws = generator.sample_codes(z[0])
        other = generator.sample_codes(z[1])
        layer = torch.arange(generator.num_ws).reshape(1, -1)
        use_other = (mix.reshape(-1, 1) & (layer >= cutoff.reshape(-1, 1))).to(device)
        return torch.where(use_other[..., None], other, ws)


class RealImages:
    """Aligned photos for the real-image terms, in a seeded order per epoch."""

    def __init__(self, folder: Path, resolution: int, seed: int) -> None:
        self.paths = find_images(Path(folder), regular_only=True)
        if not self.paths:
            raise UserError(f"{folder}: --data holds no images; pass the output folder of `sefa-edit align`")
        self.resolution, self.seed = resolution, seed
        self._orders: dict[int, torch.Tensor] = {}

    def _order(self, epoch: int) -> torch.Tensor:
        """The photo order of one epoch, drawn once (a function of seed and epoch only)."""
        if epoch not in self._orders:
            self._orders = {epoch: torch.randperm(len(self.paths), generator=torch.Generator().manual_seed(self.seed + epoch))}
        return self._orders[epoch]

    def batch(self, step: int, size: int) -> torch.Tensor:
        picks = []
        for position in range(step * size, (step + 1) * size):
            epoch, offset = divmod(position, len(self.paths))
            picks.append(load_target(self.paths[self._order(epoch)[offset]], self.resolution))
        return torch.stack(picks)


def train_encoder(
    generator_path: Path,
    out_path: Path,
    settings: TrainSettings,
    data: Path | None = None,
    perceptual: str = "auto",
    vgg_path: Path | None = None,
    device_name: str = "auto",
    restart: bool = False,
    say: Callable[[str], None] = lambda message: None,
    shared_dir: Path | None = None,
) -> dict:
    if settings.steps < 1 or settings.batch_size < 1 or settings.checkpoint_every < 1:
        raise UserError("--steps, --batch-size and --checkpoint-every must be >= 1")
    device = resolve_device(device_name)
    perceptual, notice = choose_perceptual(perceptual, vgg_path, shared_dir)
    checkpoint = load_checkpoint(generator_path)
    generator = checkpoint.build_generator(device)
    if not generator.invertible:
        raise UserError(f"{generator_path}: a {checkpoint.architecture} generator has no W+ codes for an encoder to predict; "
                        f"use a StyleGAN or StyleGAN2 generator")
    if notice:
        say(notice)
    lpips_model = LPIPS(find_vgg_weights(vgg_path, shared_dir)).to(device) if perceptual == "lpips" else None
    real = RealImages(data, generator.img_resolution, settings.seed) if data is not None else None
    discriminator = None
    if real is not None:
        try:
            discriminator = checkpoint.build_discriminator(device)
        except UserError as exc:
            say(f"{exc}; training without the adversarial term")
    if real is not None and discriminator is None:
        say(f"{generator_path}: no discriminator in this checkpoint; training without the adversarial term")
    group = discriminator.mbstd_group_size if discriminator is not None else None
    if group is not None and settings.batch_size % min(group, settings.batch_size):
        raise UserError(f"--batch-size {settings.batch_size}: the discriminator compares samples in groups of {group} "
                        f"(minibatch stddev); use a multiple of {group}")

    torch.manual_seed(settings.seed)  # the initial weights, so that two runs with one seed agree
    encoder = Encoder(EncoderConfig.for_generator(generator.img_resolution, generator.num_ws, generator.w_dim),
                      w_avg=generator.mean_code().mean(dim=0)).to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=settings.lr, betas=(0.9, 0.99))
    start_step = 0
    log_path = out_path.with_name(out_path.name + ".log.jsonl")
    if out_path.exists() and not restart:
        payload = load_encoder_file(out_path)
        if payload.get("generator_sha256") != checkpoint.sha256:
            raise UserError(f"{out_path}: holds an encoder for another generator; choose another --out or pass --restart")
        encoder = Encoder(EncoderConfig(**payload["config"])).to(device)
        encoder.load_state_dict(payload["state"])
        optimizer = torch.optim.Adam(encoder.parameters(), lr=settings.lr, betas=(0.9, 0.99))
        optimizer.load_state_dict(payload["optimizer"])
        start_step = int(payload["step"])
        say(f"resuming {out_path} at step {start_step}")
        _truncate_log(log_path, start_step)
    elif log_path.exists():
        log_path.unlink()

    last = {}
    for step in track(range(start_step, settings.steps), "training encoder", total=settings.steps - start_step, unit="steps"):
        ws = sample_codes(generator, settings.batch_size, step, settings, device)
        with torch.no_grad():
            images = generator.render(ws)
        predicted = encoder(images)
        rendered = generator.render(predicted)
        losses = {
            "latent": F.mse_loss(predicted, ws),
            "image": F.mse_loss(rendered, images),
        }
        if lpips_model is not None:
            losses["perceptual"] = lpips_model(rendered, images).mean()
        if real is not None:
            photos = real.batch(step, settings.batch_size).to(device)
            photos_rendered = generator.render(encoder(photos))
            losses["real_image"] = F.mse_loss(photos_rendered, photos)
            if lpips_model is not None:
                losses["real_perceptual"] = lpips_model(photos_rendered, photos).mean()
            if discriminator is not None:
                # non-saturating generator loss: reconstructions should look real to the GAN's own critic
                losses["adversarial"] = F.softplus(-discriminator(photos_rendered)).mean()
        weights = {"latent": settings.lambda_latent, "image": settings.lambda_image, "real_image": settings.lambda_image,
                   "perceptual": settings.lambda_perceptual, "real_perceptual": settings.lambda_perceptual,
                   "adversarial": settings.lambda_adversarial}
        total = sum(weights[name] * value for name, value in losses.items())
        if not torch.isfinite(total):
            raise UserError(f"encoder training diverged at step {step} (loss {total.item()}); lower --lr and --restart")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        last = {"step": step, "total": round(total.item(), 6), **{k: round(v.item(), 6) for k, v in losses.items()}}
        checkpointing = (step + 1) % settings.checkpoint_every == 0 or step == settings.steps - 1
        if step % 10 == 0 or checkpointing:
            atomic.append_jsonl(log_path, {**last, "time": time.time()})
        if checkpointing:
            save_encoder(out_path, encoder, checkpoint.sha256, extra={
                "optimizer": optimizer.state_dict(), "step": step + 1, "settings": asdict(settings),
                "data": str(data) if data else None,
            })
    return {"encoder": str(out_path), "steps": settings.steps, "resumed_from": start_step, "last": last}


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines of steps after the checkpoint we resume from (they will be redone)."""
    if not log_path.exists():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            if parse_json_text(line)["step"] < step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic.write_text(log_path, "".join(f"{line}\n" for line in kept))
