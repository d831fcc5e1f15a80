"""Pivotal tuning (PTI: Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", TOG 2022).

Inversion finds a code w_p (the pivot) whose render is close to the photo but not equal: an in-domain
code is editable because it stays where the generator was trained, and that is also why it misses the
person's details. PTI then moves the generator instead of the code: a copy of its weights is tuned for a
few hundred steps so that G'(w_p) reproduces the photo, while a locality regulariser keeps G' equal to
G on codes around the pivot, so SeFa directions found on G keep their meaning on G'.

One step, as `SingleIDCoach.train()` of danielroich/PTI:
    image   = G'(w_p)                                       (constant noise)
    loss    = l2 * MSE(image, x) + lpips * LPIPS(image, x)
    locality (every `locality_interval` steps):
        z ~ N(0, I),  w = mapping(z) at psi 0.5
        w_r = w_p + alpha * (w - w_p) / ||w - w_p||         (a code at distance alpha from the pivot)
        loss += l2_r * MSE(G(w_r), G'(w_r)) + lpips_r * LPIPS(G(w_r), G'(w_r))   (no noise), averaged over samples
    stop when LPIPS(image, x) <= threshold (checked before the update), else Adam step on G'.
Only the weights the render reads move (the synthesis network); the mapping is the frozen one's.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from common.progress import report_progress


@dataclass(frozen=True)
class TuningSettings:
    """PTI's hyperparameters (configs/hyperparameters.py), with its locality regulariser on."""

    steps: int = 350  # max_pti_steps
    lr: float = 3e-4  # pti_learning_rate (Adam, torch defaults otherwise)
    lambda_l2: float = 1.0  # pt_l2_lambda
    lambda_lpips: float = 1.0  # pt_lpips_lambda
    lpips_threshold: float = 0.06  # LPIPS_value_threshold: the early stop
    locality: bool = True  # use_locality_regularization (PTI's default is off; its paper's results use it)
    locality_alpha: float = 30.0  # regulizer_alpha
    locality_samples: int = 1  # latent_ball_num_of_samples
    locality_interval: int = 1  # locality_regularization_interval
    locality_l2: float = 0.1  # regulizer_l2_lambda
    locality_lpips: float = 0.1  # regulizer_lpips_lambda
    locality_psi: float = 0.5  # truncation of the regulariser's samples
    seed: int = 0  # of the regulariser's z draws

    def validate(self) -> None:
        from common.errors import UserError

        if self.steps < 0:
            raise UserError(f"--tune {self.steps}: must be 0 (no tuning) or more")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise UserError(f"tuning learning rate {self.lr}: must be a positive number")


@dataclass
class StepLosses:
    total: float
    l2: float
    lpips: float
    locality: float  # as added to the loss (weighted)
    locality_mse: float  # the unweighted MSE of the regulariser's renders


@dataclass
class TuningResult:
    generator: torch.nn.Module  # the tuned copy
    steps_run: int
    stopped_early: bool
    losses: list[StepLosses] = field(default_factory=list)
    seconds: float = 0.0


def morphed_code(pivot: torch.Tensor, sample: torch.Tensor, alpha: float) -> torch.Tensor:
    """The code at distance `alpha` from the pivot towards `sample` (Frobenius norm over the whole code)."""
    direction = sample - pivot
    return pivot + alpha * direction / torch.norm(direction, p=2)


def tune(generator: torch.nn.Module, pivot: torch.Tensor, target: torch.Tensor, settings: TuningSettings,
         perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
         rng: np.random.RandomState | None = None,
         after_step: Callable[[int, torch.nn.Module, StepLosses], None] | None = None) -> TuningResult:
    """Tune a copy of `generator` so that its render of `pivot` [1, num_ws, w_dim] reproduces `target`
    [1, 3, R, R] in [-1, 1]. `perceptual` is LPIPS (per image); without it the LPIPS terms and the early stop
    are off (pixel loss and the locality MSE only). `rng` draws the regulariser's z (PTI uses numpy's global
    generator; default: RandomState(settings.seed)). `after_step(step, tuned, losses)` sees each update."""
    start = time.perf_counter()
    rng = rng if rng is not None else np.random.RandomState(settings.seed)
    frozen = generator
    tuned = copy.deepcopy(generator)
    tuned.requires_grad_(True)
    parameters = [p for p in tuned.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=settings.lr)
    device = pivot.device
    pivot = pivot.detach()
    result = TuningResult(tuned, 0, False)
    use_locality = True  # PTI's use_ball_holder starts True and is recomputed after each step
    for step in range(settings.steps):
        image = tuned.render(pivot, noise_mode="const")
        l2 = F.mse_loss(image, target)
        loss = settings.lambda_l2 * l2
        lpips = perceptual(image, target).mean() if perceptual is not None else torch.zeros((), device=device)
        loss = loss + settings.lambda_lpips * lpips
        locality = locality_mse = torch.zeros((), device=device)
        if settings.locality and use_locality:
            locality, locality_mse = _locality_loss(frozen, tuned, pivot, settings, perceptual, rng)
            loss = loss + locality
        optimizer.zero_grad(set_to_none=True)
        losses = StepLosses(loss.item(), l2.item(), lpips.item(), locality.item(), locality_mse.item())
        if perceptual is not None and lpips.item() <= settings.lpips_threshold:
            result.stopped_early = True
            break
        loss.backward()
        optimizer.step()
        use_locality = (step + 1) % settings.locality_interval == 0
        result.steps_run = step + 1
        result.losses.append(losses)
        if after_step is not None:
            after_step(step + 1, tuned, losses)
        report_progress("tuning", step + 1, settings.steps)
    tuned.requires_grad_(False)
    result.seconds = time.perf_counter() - start
    return result


def tune_jointly(generator: torch.nn.Module, pivots: list[torch.Tensor], targets: list[torch.Tensor],
                 settings: TuningSettings, perceptual=None, rng: np.random.RandomState | None = None) -> TuningResult:
    """PTI's multi-ID mode (`MultiIDCoach`): one tuned copy for several faces (the faces of one photo).
    Each step visits every face in order, with its own loss and its own Adam update, as the reference does;
    there is no early stop. `pivots[k]` [1, num_ws, w_dim] renders `targets[k]` [1, 3, R, R]."""
    start = time.perf_counter()
    rng = rng if rng is not None else np.random.RandomState(settings.seed)
    tuned = copy.deepcopy(generator)
    tuned.requires_grad_(True)
    optimizer = torch.optim.Adam(list(tuned.parameters()), lr=settings.lr)
    result = TuningResult(tuned, 0, False)
    use_locality, updates = True, 0
    for step in range(settings.steps):
        for pivot, target in zip(pivots, targets):
            pivot = pivot.detach()
            image = tuned.render(pivot, noise_mode="const")
            l2 = F.mse_loss(image, target)
            lpips = perceptual(image, target).mean() if perceptual is not None else torch.zeros((), device=pivot.device)
            loss = settings.lambda_l2 * l2 + settings.lambda_lpips * lpips
            locality = locality_mse = torch.zeros((), device=pivot.device)
            if settings.locality and use_locality:
                locality, locality_mse = _locality_loss(generator, tuned, pivot, settings, perceptual, rng)
                loss = loss + locality
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            updates += 1
            use_locality = updates % settings.locality_interval == 0
            result.losses.append(StepLosses(loss.item(), l2.item(), lpips.item(), locality.item(), locality_mse.item()))
        result.steps_run = step + 1
        report_progress("tuning", step + 1, settings.steps, units=len(pivots))
    tuned.requires_grad_(False)
    result.seconds = time.perf_counter() - start
    return result


def _locality_loss(frozen, tuned, pivot, settings: TuningSettings, perceptual, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """PTI's space regulariser: renders of codes at distance alpha from the pivot must not change."""
    z = torch.from_numpy(rng.randn(settings.locality_samples, frozen.z_dim)).to(pivot.device).float()
    with torch.no_grad():
        samples = frozen.sample_codes(z, truncation_psi=settings.locality_psi)
    total = torch.zeros((), device=pivot.device)
    mse_sum = torch.zeros((), device=pivot.device)
    for sample in samples:
        code = morphed_code(pivot, sample.unsqueeze(0), settings.locality_alpha)
        new = tuned.render(code, noise_mode="none")
        with torch.no_grad():
            old = frozen.render(code, noise_mode="none")
        mse = F.mse_loss(old, new)
        mse_sum = mse_sum + mse.detach()
        if settings.locality_l2 > 0:
            total = total + settings.locality_l2 * mse
        if settings.locality_lpips > 0 and perceptual is not None:
            total = total + settings.locality_lpips * perceptual(old, new).mean()
    return total / len(samples), mse_sum / len(samples)


def weight_delta(original: torch.nn.Module, tuned: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{parameter name: tuned - original} for every parameter tuning changed: what is stored per photo."""
    before = dict(original.named_parameters())
    return {name: (value.detach() - before[name].detach()).cpu() for name, value in tuned.named_parameters()
            if not torch.equal(value.detach(), before[name].detach())}
