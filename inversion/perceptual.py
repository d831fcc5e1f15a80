"""LPIPS perceptual distance (Zhang et al., CVPR 2018): VGG16 features + the `lpips` package's linear heads.

The linear heads ship inside the `lpips` package. The VGG16 backbone does not, and cannot be
downloaded at run time here, so it is loaded from a local torchvision-format state dict
(`vgg16-397923af.pth`), looked up in this order: `--vgg PATH`, the sefa-edit cache
(`sefa-edit models fetch vgg16` puts it there), torch's hub cache, and `../shared/`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from common.downloads import PUBLISHED, cache_dir
from common.errors import UserError
from common.regular_files import problem_with

# torchvision `features.{index}` -> the LPIPS VGG slice that holds that layer (lpips keeps the index).
_SLICE_OF_LAYER = {**{i: 1 for i in range(0, 4)}, **{i: 2 for i in range(4, 9)}, **{i: 3 for i in range(9, 16)},
                   **{i: 4 for i in range(16, 23)}, **{i: 5 for i in range(23, 30)}}
_MAX_SIDE = 256  # LPIPS is computed at <= 256 px, like In-Domain inversion's perceptual term


def find_vgg_weights(explicit: Path | None = None, shared_dir: Path | None = None) -> Path:
    if explicit is not None:
        if not Path(explicit).is_file():
            raise UserError(f"{explicit}: no such VGG16 weights file (torchvision format, e.g. vgg16-397923af.pth)")
        return Path(explicit)
    filename = PUBLISHED["vgg16"].filename
    candidates = [cache_dir() / filename, Path(torch.hub.get_dir()) / "checkpoints" / filename]
    if shared_dir is not None and shared_dir.is_dir():
        candidates += sorted(shared_dir.rglob("vgg16*.pth"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        f"LPIPS needs VGG16 weights and none were found: put {filename} in {cache_dir()} "
        f"(`sefa-edit models fetch vgg16` downloads it from {PUBLISHED['vgg16'].url}), pass --vgg PATH, "
        f"or use --perceptual none"
    )


PERCEPTUAL_CHOICES = ("auto", "lpips", "none")
NO_VGG_NOTICE = ("warning: no VGG16 weights for LPIPS: inverting with pixel loss and the domain regulariser only "
                 "(`sefa-edit models fetch vgg16` once adds LPIPS; --perceptual none says this is what you want)")


def choose_perceptual(choice: str, vgg: Path | None = None, shared_dir: Path | None = None) -> tuple[str, str | None]:
    """--perceptual as used: `auto` is LPIPS when VGG16 weights are found and pixel loss alone when not,
    the same default for `invert`, `run` and the editor. Returns the loss and, for an `auto` that fell
    back, the notice to print (once, and only by a command that then inverts something)."""
    if choice not in PERCEPTUAL_CHOICES:
        raise UserError(f"--perceptual {choice!r}: expected auto, lpips or none")
    if choice == "none":
        return "none", None
    if choice == "lpips":
        find_vgg_weights(vgg, shared_dir)  # one line saying where to put them
        return "lpips", None
    try:
        find_vgg_weights(vgg, shared_dir)
        return "lpips", None
    except UserError:
        if vgg is not None:
            raise  # a --vgg that names no file is a mistake, not a reason to fall back
        return "none", NO_VGG_NOTICE


class LPIPS(torch.nn.Module):
    """Per-image LPIPS distance between batches in [-1, 1]; differentiable, weights frozen."""

    def __init__(self, vgg_path: Path) -> None:
        super().__init__()
        import lpips

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # pnet_rand=True: build VGG16 without torchvision's download; we fill its weights ourselves.
            self.model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
        self._load_backbone(Path(vgg_path))
        self.eval().requires_grad_(False)

    def _load_backbone(self, path: Path) -> None:
        problem = problem_with(path)
        if problem is not None:
            raise UserError(f"{path}: {problem}; pass the VGG16 weights file (--vgg)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UserError(f"{path}: not a readable VGG16 state dict ({type(exc).__name__}); re-download it") from exc
        net = self.model.net
        target = net.state_dict()
        mapped = {}
        for key, tensor in state.items():
            parts = key.split(".")
            if parts[0] != "features":
                continue  # the classifier is not used
            layer = int(parts[1])
            if layer in _SLICE_OF_LAYER:
                mapped[f"slice{_SLICE_OF_LAYER[layer]}.{layer}.{parts[2]}"] = tensor
        missing = [k for k in target if k not in mapped]
        wrong = [k for k in target if k in mapped and mapped[k].shape != target[k].shape]
        if missing or wrong:
            raise UserError(f"{path}: not torchvision VGG16 weights (missing {missing[:2]}, wrong shapes {wrong[:2]})")
        net.load_state_dict(mapped)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > _MAX_SIDE:
            x = F.interpolate(x, size=(_MAX_SIDE, _MAX_SIDE), mode="area")
            y = F.interpolate(y, size=(_MAX_SIDE, _MAX_SIDE), mode="area")
        return self.model(x, y).reshape(-1)
