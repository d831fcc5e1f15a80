"""Our pSp / e4e encoders against the reference networks themselves, on the same random weights, side by side.

The reference code is not part of this project: point the script at your own checkouts of
omertov/encoder4editing and/or eladrich/pixel2style2pixel. Only their encoder modules are imported
(`models/encoders/psp_encoders.py`, `helpers.py`); the CUDA ops their StyleGAN2 package compiles on
import are replaced by a stand-in module, since the encoders never call them. Weights are the reference's
default initialisation, perturbed, with BatchNorm statistics calibrated on a batch (so activations stay
finite through 24 residual units); inputs are smooth random images at 256 px.

    python benchmarks/encoder_parity.py --e4e-repo ~/src/encoder4editing --psp-repo ~/src/pixel2style2pixel [--images 3]

Prints, per encoder: max |ours - reference| over the codes, the largest |code|, and the time per image of each.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from generators.psp_encoder import encoder_from_state  # noqa: E402


def reference_encoder(repo: Path, encoder_type: str, num_styles: int) -> torch.nn.Module:
    """The reference class from a checkout, imported with a stand-in for its CUDA op package."""
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[name]
    stub = types.ModuleType("models.stylegan2.op")

    def unavailable(*args, **kwargs):
        raise RuntimeError("CUDA op not available in this comparison")

    stub.FusedLeakyReLU = stub.fused_leaky_relu = stub.upfirdn2d = unavailable
    sys.modules["models.stylegan2.op"] = stub
    sys.path.insert(0, str(repo))
    try:
        from models.encoders import psp_encoders  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(repo))
    opts = types.SimpleNamespace(stylegan_size=1024, output_size=1024, n_styles=num_styles, input_nc=3)
    return getattr(psp_encoders, encoder_type)(50, "ir_se", opts)


def randomised(network: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if tensor.is_floating_point() and "running" not in name:
                tensor.add_(0.1 * torch.randn(tensor.shape, generator=generator))
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
                module.reset_running_stats()
        network.train()
        network(smooth_images(4, seed + 1))  # calibrate the BatchNorm statistics
    network.eval()
    return {k: v.clone() for k, v in network.state_dict().items()}


def smooth_images(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand([count, 3, 16, 16], generator=generator) * 2 - 1
    return F.interpolate(coarse, size=256, mode="bilinear", align_corners=False)


def compare(repo: Path, encoder_type: str, images: int) -> None:
    reference = reference_encoder(repo, encoder_type, 18)
    state = randomised(reference, seed=0)
    latent_avg = torch.randn([512], generator=torch.Generator().manual_seed(2))
    ours = encoder_from_state(state, encoder_type, latent_avg)
    x = smooth_images(images, seed=3)
    with torch.no_grad():
        start = time.perf_counter()
        theirs = reference(x) + latent_avg
        reference_seconds = (time.perf_counter() - start) / images
        start = time.perf_counter()
        mine = ours(x)
        our_seconds = (time.perf_counter() - start) / images
    print(f"{encoder_type:<20} {repo.name:<22} codes {tuple(mine.shape)}  max |ours - ref| {(mine - theirs).abs().max().item():.3g}"
          f"  max |code| {theirs.abs().max().item():.3g}  s/image: ours {our_seconds:.2f}, reference {reference_seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e4e-repo", type=Path, help="checkout of omertov/encoder4editing")
    parser.add_argument("--psp-repo", type=Path, help="checkout of eladrich/pixel2style2pixel")
    parser.add_argument("--images", type=int, default=3)
    args = parser.parse_args()
    if args.e4e_repo is None and args.psp_repo is None:
        parser.error("give --e4e-repo and/or --psp-repo (checkouts of the reference code)")
    torch.manual_seed(0)
    if args.e4e_repo is not None:
        compare(args.e4e_repo, "Encoder4Editing", args.images)
        compare(args.e4e_repo, "GradualStyleEncoder", args.images)
    if args.psp_repo is not None:
        compare(args.psp_repo, "GradualStyleEncoder", args.images)


if __name__ == "__main__":
    main()
