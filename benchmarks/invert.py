"""Inversion cost and quality on this machine's CPU, three ways in one run:
encoder only (E(x), no optimisation), encoder + in-domain optimisation (W+, with the domain
regulariser), and plain W-space projection from the mean W without an encoder (NVIDIA-projector style);
then the encoder start against the mean start at equal time (the mean start gets as many steps as fit in
the encoder run's time), and the cost of the published e4e encoder (ResNet-IR-SE-50; random weights, so
its rows measure time, not quality: its codes land far from the targets).

No real generator weights are available here, so the stand-in is a StyleGAN2 at 256x256 with the
FFHQ-256 layout of stylegan2-ada-pytorch (channel_base 16384, channel_max 512, 8 mapping layers),
random weights, and its encoder trained for --train-steps on its own samples. Targets are images
the stand-in generated (known codes), so quality figures measure the optimiser, not the GAN.
LPIPS is reported when VGG16 weights are found (see README), and used in the loss only then.
Last, `--precision` side by side: faces per minute for encoder only and encoder + optimisation in fp32,
bf16 and fp16 (`generators/precision.py`), and how far each reduced-precision reconstruction lies from
the fp32 one (PSNR); on a GPU (`--device cuda`) that is what says whether bf16/fp16 are worth it.

    python benchmarks/invert.py [--steps 20] [--images 2] [--train-steps 30] [--no-e4e] [--device auto]
                                [--precisions fp32,bf16,fp16] [--resolution 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import UserError  # noqa: E402
from common.devices import resolve_device  # noqa: E402
from generators.precision import check_precision, set_precision  # noqa: E402
from generators.stylegan2 import Generator, StyleGAN2Config, channels_for  # noqa: E402
from inversion.encoder import Encoder, EncoderConfig  # noqa: E402
from inversion.optimize import InversionSettings, invert, per_image_mse, psnr_from_mse  # noqa: E402
from inversion.perceptual import LPIPS, find_vgg_weights  # noqa: E402
from inversion.train import TrainSettings, sample_codes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--no-e4e", action="store_true", help="skip the e4e timing rows")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precisions", default=None,
                        help="the precisions compared at the end (default: fp32,bf16,fp16 on a GPU, none on a CPU)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.precisions is None:
        args.precisions = "fp32,bf16,fp16" if device.type == "cuda" else ""
    precisions = [check_precision(name.strip()) for name in args.precisions.split(",") if name.strip()]
    torch.manual_seed(0)
    config = StyleGAN2Config(img_resolution=args.resolution, channels=channels_for(args.resolution, 16384, 512))
    generator = Generator(config).eval().requires_grad_(False)
    with torch.no_grad():
        generator.mapping.w_avg.copy_(generator.mapping(torch.randn(2000, 512))[:, 0].mean(0))
    generator = generator.to(device)
    try:
        lpips = LPIPS(find_vgg_weights(None, Path(__file__).resolve().parents[2] / "shared")).to(device)
    except UserError:
        lpips = None
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"stand-in StyleGAN2 {args.resolution}px, {sum(p.numel() for p in generator.parameters()) / 1e6:.1f}M parameters, "
          f"{where}; LPIPS {'on' if lpips else 'off (no VGG16 weights)'}")

    encoder = Encoder(EncoderConfig.for_generator(args.resolution, config.num_ws, config.w_dim),
                      w_avg=generator.mapping.w_avg.cpu()).to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-4)
    settings = TrainSettings(batch_size=4)
    start = time.perf_counter()
    for step in range(args.train_steps):
        ws = sample_codes(generator, settings.batch_size, step, settings, device)
        with torch.no_grad():
            images = generator.synthesis(ws)
        loss = torch.nn.functional.mse_loss(encoder(images), ws)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"encoder training: {(time.perf_counter() - start) / max(args.train_steps, 1):.2f} s/step (batch 4, latent loss only)")
    encoder.eval().requires_grad_(False)

    z = torch.randn([args.images, 512], generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        targets = generator.synthesis(generator.mapping(z, truncation_psi=0.7))

    print(f"{'method':34s} {'s/image':>8s} {'s/img/step':>11s} {'MSE':>8s} {'PSNR dB':>8s} {'LPIPS':>7s}")

    def report(name: str, seconds: float, steps: int, reconstructions: torch.Tensor) -> None:
        mse = per_image_mse(reconstructions, targets)
        lp = f"{lpips(reconstructions, targets).mean().item():7.4f}" if lpips else "    n/a"
        per_step = f"{seconds / args.images / steps:11.3f}" if steps else f"{'-':>11s}"
        print(f"{name:34s} {seconds / args.images:8.2f} {per_step} {mse.mean().item():8.5f} {psnr_from_mse(mse).mean().item():8.2f} {lp}")

    start = time.perf_counter()
    with torch.no_grad():
        reconstructions = generator.synthesis(encoder(targets))
    report("encoder only", time.perf_counter() - start, 0, reconstructions)
    runs = [
        ("encoder + in-domain optimisation", encoder, InversionSettings(steps=args.steps, lr=0.01)),
        ("W projection, no encoder", None, InversionSettings(steps=args.steps, lr=0.05, space="w", lambda_encoder=0)),
        ("W+ optimisation, no encoder", None, InversionSettings(steps=args.steps, lr=0.01, lambda_encoder=0)),
    ]
    results = {}
    for name, enc, run_settings in runs:
        result = invert(generator, targets, enc, lpips, run_settings)
        report(name, result.seconds, args.steps, result.reconstructions)
        results[name] = result

    # Equal time: the mean start gets the steps that fit in the encoder run's time.
    budget = results["encoder + in-domain optimisation"].seconds
    per_step = results["W+ optimisation, no encoder"].seconds / max(args.steps, 1)
    equal_steps = max(1, round(budget / per_step))
    result = invert(generator, targets, None, lpips, InversionSettings(steps=equal_steps, lr=0.01, lambda_encoder=0))
    report(f"W+ from mean, equal time ({equal_steps} steps)", result.seconds, equal_steps, result.reconstructions)

    if not args.no_e4e:
        from generators.psp_encoder import PSPEncoder, PSPEncoderConfig

        e4e = PSPEncoder(PSPEncoderConfig("Encoder4Editing", config.num_ws), generator.mapping.w_avg.cpu())
        e4e = e4e.eval().requires_grad_(False).to(device)
        for head in e4e.net.styles:
            head.linear.weight.data.mul_(0.01)  # random heads, scaled so the codes stay near the mean
        start = time.perf_counter()
        with torch.no_grad():
            reconstructions = generator.synthesis(e4e(targets))
        report("e4e only (random weights: time)", time.perf_counter() - start, 0, reconstructions)
        result = invert(generator, targets, e4e, lpips, InversionSettings(steps=args.steps, lr=0.01))
        report("e4e + in-domain opt. (time)", result.seconds, args.steps, result.reconstructions)
    if not precisions:
        print("\nprecision comparison skipped: bf16/fp16 are for GPUs (on this CPU they are ~50x slower than fp32); "
              "pass --precisions fp32,bf16 to measure them here anyway")
    else:
        compare_precisions(generator, encoder, targets, lpips, args.steps, precisions, device)


def synchronized_seconds(device: torch.device, start: float) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def compare_precisions(generator, encoder, targets, lpips, steps: int, precisions: list[str], device: torch.device) -> None:
    """Faces per minute for encoder only and encoder + `steps` in each precision, and the PSNR of each
    reconstruction against the fp32 one (the same code path in fp32): what reduced precision costs."""
    print(f"\n{'precision':10s} {'encoder only /min':>18s} {f'+{steps} steps /min':>16s} "
          f"{'PSNR vs fp32 (enc.)':>20s} {'PSNR vs fp32 (opt.)':>20s}")
    settings = InversionSettings(steps=steps, lr=0.01)
    exact = None
    for name in precisions:
        set_precision(generator, name)
        invert(generator, targets[:1], encoder, lpips, InversionSettings(steps=1, lr=0.01))  # warm-up (kernels, caches)
        start = time.perf_counter()
        with torch.no_grad():
            encoded = generator.synthesis(encoder(targets))
        encoder_seconds = synchronized_seconds(device, start)
        start = time.perf_counter()
        optimised = invert(generator, targets, encoder, lpips, settings).reconstructions
        optimise_seconds = synchronized_seconds(device, start)
        if exact is None and name == "fp32":
            exact = (encoded, optimised)

        def versus(image: torch.Tensor, index: int) -> str:
            if exact is None or name == "fp32":
                return f"{'-':>20s}"
            return f"{psnr_from_mse(per_image_mse(image, exact[index])).mean().item():20.2f}"

        count = targets.shape[0]
        print(f"{name:10s} {60 * count / encoder_seconds:18.1f} {60 * count / optimise_seconds:16.2f} "
              f"{versus(encoded, 0)} {versus(optimised, 1)}")
    set_precision(generator, "fp32")


if __name__ == "__main__":
    main()
