"""In-domain code optimisation: refine W+ codes so G(w) reproduces the photo and w stays in-domain.

For targets x, starting from w0 = E(x) (or the mean W without an encoder), minimise per image
    ||G(w) - x||^2  +  lambda_p * LPIPS(G(w), x)  +  lambda_enc * ||w - E(G(w))||^2
with Adam. The last term is In-Domain GAN Inversion's domain regulariser: a code that the encoder
cannot recover from its own image lies outside the generator's semantic domain, and editing it
would move along directions learnt for other codes. Each image's code is a separate parameter
slice, so a batch is optimised exactly as its images would be one by one; an image whose loss turns
non-finite is frozen at its last good code and reported, the others go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from common.progress import report_progress
from generators.interface import LatentGenerator
from inversion.perceptual import LPIPS


@dataclass(frozen=True)
class InversionSettings:
    steps: int = 100
    lr: float = 0.01
    lambda_perceptual: float = 1.0
    lambda_encoder: float = 2.0
    seed: int = 0
    space: str = "w+"  # "w+": one code per layer; "w": one code shared by all layers (NVIDIA projector style)
    precision: str = "fp32"  # the generator's render precision (`generators/precision.py`); losses stay fp32

    def validate(self) -> None:
        """Checked before any model is loaded: a bad value must not cost a generator load first."""
        from common.errors import UserError
        from common.validate import require_finite
        from generators.precision import check_precision

        for option, value in (("--lr", self.lr), ("--lambda-perceptual", self.lambda_perceptual),
                              ("--lambda-encoder", self.lambda_encoder)):
            require_finite(option, value)
        if self.steps < 0:
            raise UserError(f"--steps {self.steps}: must be 0 or more")
        if self.lr <= 0:
            raise UserError(f"--lr {self.lr}: must be positive")
        if self.lambda_perceptual < 0 or self.lambda_encoder < 0:
            raise UserError("--lambda-perceptual and --lambda-encoder must be 0 or more")
        if self.space not in ("w+", "w"):
            raise UserError(f"--space {self.space!r}: expected w+ or w")
        check_precision(self.precision)


@dataclass
class InversionResult:
    ws: torch.Tensor  # [N, num_ws, w_dim]
    reconstructions: torch.Tensor  # [N, 3, R, R] in [-1, 1]
    start_reconstructions: torch.Tensor  # [N, 3, R, R]: G at the start code (the encoder's alone, with one)
    start_mse: torch.Tensor  # [N]
    start_lpips: torch.Tensor | None  # [N]
    mse: torch.Tensor  # [N], images in [-1, 1]
    lpips: torch.Tensor | None  # [N]
    failure: list[str | None]  # per image: None, or why it failed
    seconds: float


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2, i.e. 255 levels in 8-bit terms)."""
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).square().flatten(1).mean(dim=1)


def invert(
    generator: LatentGenerator,
    targets: torch.Tensor,
    encoder: torch.nn.Module | None = None,
    perceptual: LPIPS | None = None,
    settings: InversionSettings = InversionSettings(),
    start: torch.Tensor | None = None,
) -> InversionResult:
    """Invert a batch of targets [N, 3, R, R] in [-1, 1] (already at the generator's resolution).

    `encoder` maps images to codes [N, num_ws, w_dim]: ours (`inversion/encoder.py`) or IDInvert's.
    `start` overrides where the optimisation begins (default: the encoder's codes, else the mean code)."""
    start_time = time.perf_counter()
    torch.manual_seed(settings.seed)
    batch = targets.shape[0]
    with torch.no_grad():
        if start is not None:
            start = start.to(targets)
        elif encoder is not None:
            start = encoder(targets)
        else:
            start = generator.mean_code().to(targets).unsqueeze(0).repeat(batch, 1, 1)
        start_images = generator.render(start)
        start_mse = per_image_mse(start_images, targets)
        start_lpips = perceptual(start_images, targets) if perceptual is not None else None
    if settings.space not in ("w+", "w"):
        raise ValueError(f"space must be 'w+' or 'w', got {settings.space!r}")
    # In W, one vector per image is optimised and broadcast to every layer.
    variable = (start if settings.space == "w+" else start.mean(dim=1, keepdim=True)).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([variable], lr=settings.lr, betas=(0.9, 0.999))

    def codes() -> torch.Tensor:
        return variable if settings.space == "w+" else variable.expand(-1, generator.num_ws, -1)

    last_good = codes().detach().clone()
    frozen = torch.zeros(batch, dtype=torch.bool, device=targets.device)
    failure: list[str | None] = [None] * batch

    for step in range(settings.steps):
        ws = codes()
        images = generator.render(ws)
        losses = per_image_mse(images, targets)
        if perceptual is not None and settings.lambda_perceptual > 0:
            losses = losses + settings.lambda_perceptual * perceptual(images, targets)
        if encoder is not None and settings.lambda_encoder > 0:
            losses = losses + settings.lambda_encoder * per_image_mse(encoder(images), ws)
        bad = ~torch.isfinite(losses) & ~frozen
        for index in torch.nonzero(bad).flatten().tolist():
            failure[index] = f"loss became {losses[index].item()} at step {step}"
        frozen |= bad
        if bool(frozen.all()):
            break
        optimizer.zero_grad(set_to_none=True)
        losses[~frozen].sum().backward()
        variable.grad[frozen] = 0
        optimizer.step()
        with torch.no_grad():
            current = codes()
            finite = torch.isfinite(current).flatten(1).all(dim=1) & ~frozen
            last_good[finite] = current[finite]
        report_progress("optimising", step + 1, settings.steps, units=batch)

    with torch.no_grad():
        final = last_good
        reconstructions = generator.render(final)
        mse = per_image_mse(reconstructions, targets)
        distance = perceptual(reconstructions, targets) if perceptual is not None else None
    for index in range(batch):
        if failure[index] is None and not math.isfinite(mse[index].item()):
            failure[index] = "reconstruction is not finite"
        elif failure[index] is None and mse[index] > 2 * start_mse[index] + 1e-6:
            failure[index] = f"diverged: reconstruction error {mse[index].item():.4f} vs {start_mse[index].item():.4f} at the start"
    return InversionResult(final, reconstructions, start_images, start_mse, start_lpips, mse, distance, failure,
                           time.perf_counter() - start_time)
