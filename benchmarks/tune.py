"""Pivotal tuning's cost on this machine, side by side with pivot-only inversion, in one run: seconds per
face and disk per face (the fp16 weight delta) for `--tune 0 / 50 / 200 / 350` at 64 and 256 px, and what
tuning buys: the PSNR of the pivot's render before and after, and how far renders of random codes moved
(the locality regulariser's purpose), with the regulariser on and off.

No real weights exist here, so the 64 px generator is the bundled demo model (assets/example-stylegan2-64.pt)
and the 256 px one a StyleGAN2 with FFHQ-256's layout (channel_base 16384 / max 512) and random weights;
the target is a real face crop from ../shared/photos at the generator's resolution. The pivot is the
mean code after `--pivot-steps` of W+ optimisation (pixel loss; no encoder for a random generator).
LPIPS is off unless VGG16 weights are found, so PTI's LPIPS terms and early stop are off too.

    python benchmarks/tune.py [--resolutions 64 256] [--steps 0 50 200 350] [--pivot-steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common.images import read_rgb, uint8_to_tensor  # noqa: E402
from common.tuned_weights import write_delta  # noqa: E402
from generators.stylegan2 import Generator, StyleGAN2Config, channels_for  # noqa: E402
from inversion.optimize import InversionSettings, invert, per_image_mse, psnr_from_mse  # noqa: E402
from inversion.pivotal_tuning import TuningSettings, tune, weight_delta  # noqa: E402

PHOTO = ROOT.parent / "shared" / "photos" / "face-recognition" / "obama.jpg"


def stand_in(resolution: int, device: torch.device) -> Generator:
    if resolution == 64:  # the bundled model
        from generators.checkpoint import load_checkpoint

        return load_checkpoint(ROOT / "assets" / "example-stylegan2-64.pt").build_generator(device)
    torch.manual_seed(0)
    base, top = (2048, 128) if resolution <= 64 else (16384, 512)
    config = StyleGAN2Config(img_resolution=resolution, z_dim=top, w_dim=top, channels=channels_for(resolution, base, top))
    generator = Generator(config).eval().requires_grad_(False).to(device)
    with torch.no_grad():
        generator.mapping.w_avg.copy_(generator.mapping(torch.randn(1000, top, device=device))[:, 0].mean(0))
    return generator


def target_for(resolution: int, device: torch.device) -> torch.Tensor:
    rgb = read_rgb(PHOTO)
    side = min(rgb.shape[:2])
    crop = rgb[:side, (rgb.shape[1] - side) // 2 : (rgb.shape[1] - side) // 2 + side]
    return uint8_to_tensor(cv2.resize(crop, (resolution, resolution), interpolation=cv2.INTER_AREA)).to(device)


def random_renders(generator: Generator, count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.from_numpy(np.random.RandomState(123).randn(count, generator.z_dim)).float().to(generator.mapping.w_avg.device)
    with torch.no_grad():
        ws = generator.sample_codes(z, truncation_psi=0.7)
        return ws, generator.render(ws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 50, 200, 350])
    parser.add_argument("--pivot-steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sefa-edit-tune-benchmark"))
    args = parser.parse_args()
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{torch.get_num_threads()} threads on {device}; target {PHOTO.name}; pivot: {args.pivot_steps} W+ steps from the mean")
    print(f"{'px':>5} {'tune':>5} {'locality':>8} {'s/face':>8} {'MB/face':>8} {'PSNR pivot':>10} {'PSNR tuned':>10} "
          f"{'random renders moved (MSE)':>27}")
    for resolution in args.resolutions:
        generator = stand_in(resolution, device)
        target = target_for(resolution, device)
        start = time.perf_counter()
        pivot = invert(generator, target, None, None, InversionSettings(steps=args.pivot_steps, lambda_encoder=0)).ws.detach()
        pivot_seconds = time.perf_counter() - start
        with torch.no_grad():
            pivot_psnr = psnr_from_mse(per_image_mse(generator.render(pivot), target)).item()
        codes, before = random_renders(generator)
        print(f"{resolution:>5} {'-':>5} {'-':>8} {pivot_seconds:>8.2f} {'-':>8} {pivot_psnr:>10.2f} {'-':>10} {'-':>27}"
              "   (pivot-only inversion)")
        for steps in args.steps:
            for locality in ((True, False) if steps else (True,)):
                settings = replace(TuningSettings(steps=steps), locality=locality)
                start = time.perf_counter()
                result = tune(generator, pivot, target, settings, perceptual=None)
                seconds = time.perf_counter() - start + pivot_seconds
                delta = weight_delta(generator, result.generator)
                path = write_delta(args.out / f"{resolution}_{steps}_{locality}.safetensors", delta, "benchmark", "benchmark")
                with torch.no_grad():
                    tuned_psnr = psnr_from_mse(per_image_mse(result.generator.render(pivot), target)).item()
                    moved = ((result.generator.render(codes) - before) ** 2).mean().item()
                print(f"{resolution:>5} {steps:>5} {'on' if locality else 'off':>8} {seconds:>8.2f} "
                      f"{path.stat().st_size / 2**20:>8.2f} {pivot_psnr:>10.2f} {tuned_psnr:>10.2f} {moved:>27.5f}")


if __name__ == "__main__":
    main()
