"""StyleGAN3-T and -R render time and peak memory per image on CPU: ours against NVIDIA's own code.

NVIDIA's generator runs on CPU only through its reference ops (`_filtered_lrelu_ref`: zero insertion,
full-rate FIR filtering, then decimation), which its own docstring calls "slow and memory-inefficient".
Ours computes the same sums polyphase (`generators/filtered_lrelu.py`). The reference code is not part
of this project: point the script at your own checkout of NVlabs/stylegan3 to run it side by side (its
`pkg_resources` import is given a stand-in; nothing in the checkout is changed). Without one, only our
figures are printed.

    python benchmarks/stylegan3_render.py [--stylegan3-repo ~/src/stylegan3] [--resolution 256] [--images 4]

Each network is NVIDIA's published configuration at that resolution (T: 3x3 convolutions, channel base
32768 / max 512; R: 1x1 convolutions, twice the channels, radial filters), with random weights: the
reference's default initialisation, copied into ours, so both render the same images (their largest
difference is printed). Every measurement runs in a fresh process, so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from generators import stylegan3  # noqa: E402
from generators.state_layout import load_checked  # noqa: E402


def network_kwargs(config: str, resolution: int) -> dict:
    """train.py's derivation of the two configurations (`--cfg stylegan3-t|stylegan3-r`)."""
    kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  channel_base=32768, channel_max=512, mapping_kwargs={"num_layers": 2})
    if config == "r":
        kwargs.update(conv_kernel=1, channel_base=65536, channel_max=1024, use_radial_filters=True)
    return kwargs


def reference_generator(repo: Path, kwargs: dict) -> torch.nn.Module:
    """NVIDIA's Generator from a checkout, default-initialised with a fixed seed."""
    from packaging.version import parse

    sys.modules.setdefault("pkg_resources", types.SimpleNamespace(parse_version=parse))
    sys.path.insert(0, str(repo))
    from training.networks_stylegan3 import Generator  # type: ignore[import-not-found]

    torch.manual_seed(0)
    return Generator(**kwargs).eval().requires_grad_(False)


def our_generator(repo: Path | None, kwargs: dict) -> torch.nn.Module:
    """Ours, with the reference's weights when a checkout is given (else our own random ones)."""
    config = stylegan3.config_from_kwargs(kwargs)
    generator = stylegan3.Generator(config)
    if repo is not None:
        load_checked(generator, reference_generator(repo, kwargs).state_dict())
    return generator.eval().requires_grad_(False)


def child(which: str, config: str, resolution: int, images: int, repo: Path | None) -> dict:
    """Render `images` images one at a time (after one warm-up) and report seconds per image and peak RSS."""
    kwargs = network_kwargs(config, resolution)
    generator = reference_generator(repo, kwargs) if which == "nvidia" else our_generator(repo, kwargs)
    z = torch.randn([images, 512], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ws = generator.mapping(z, None)
        render = (lambda w: generator.synthesis(w, noise_mode="const", force_fp32=True)) if which == "nvidia" \
            else generator.synthesis
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        first = render(ws[:1])
        start = time.perf_counter()
        outputs = [render(ws[i : i + 1]) for i in range(images)]
        seconds = (time.perf_counter() - start) / images
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.save(torch.cat(outputs), f"/tmp/stylegan3_render_{which}_{config}.pt")
    del first
    return {"seconds": seconds, "peak_mib": peak / 1024, "growth_mib": (peak - before) / 1024}


def measure(which: str, config: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", which, "--config", config, "--resolution", str(args.resolution),
               "--images", str(args.images)] + (["--stylegan3-repo", str(args.stylegan3_repo)] if args.stylegan3_repo else [])
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stylegan3-repo", type=Path, default=None, help="a checkout of NVlabs/stylegan3")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--configs", default="t,r")
    parser.add_argument("--child", choices=["ours", "nvidia"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default="t", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.config, args.resolution, args.images, args.stylegan3_repo)))
        return
    print(f"StyleGAN3 at {args.resolution} px on CPU ({torch.get_num_threads()} threads), {args.images} images one at a time")
    print(f"{'config':8}{'ours s/img':>12}{'NVIDIA s/img':>14}{'speed-up':>10}{'ours peak MiB':>15}{'NVIDIA peak MiB':>17}"
          f"{'max |diff|':>12}")
    for config in args.configs.split(","):
        ours = measure("ours", config, args)
        if args.stylegan3_repo is None:
            print(f"{config.upper():8}{ours['seconds']:12.3f}{'-':>14}{'-':>10}{ours['peak_mib']:15.0f}{'-':>17}{'-':>12}")
            continue
        theirs = measure("nvidia", config, args)
        a = torch.load(f"/tmp/stylegan3_render_ours_{config}.pt")
        b = torch.load(f"/tmp/stylegan3_render_nvidia_{config}.pt")
        print(f"{config.upper():8}{ours['seconds']:12.3f}{theirs['seconds']:14.3f}{theirs['seconds'] / ours['seconds']:9.1f}x"
              f"{ours['peak_mib']:15.0f}{theirs['peak_mib']:17.0f}{(a - b).abs().max().item():12.2e}")


if __name__ == "__main__":
    main()
