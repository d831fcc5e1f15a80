"""Image conversions between generator tensors ([-1, 1], NCHW, RGB) and files (uint8 RGB), and grids."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from common import atomic
from common.regular_files import open_regular

if TYPE_CHECKING:  # torch is imported where tensors are converted: the processes that only write images never load it
    import torch


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> [N, H, W, C] uint8 RGB (the generator's convention)."""
    import torch

    images = images.detach().float().clamp(-1, 1)
    images = ((images + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu().numpy()


def uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """[N, H, W, C] or [H, W, C] uint8 RGB -> [N, C, H, W] float in [-1, 1]."""
    import torch

    if images.ndim == 3:
        images = images[None]
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return tensor / 127.5 - 1


def encode_png(rgb: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    ok, buffer = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a PNG")
    return buffer.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return buffer.tobytes()


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image atomically; the format follows the suffix (.png or .jpg)."""
    path = Path(path)
    data = encode_jpeg(rgb) if path.suffix.lower() in (".jpg", ".jpeg") else encode_png(rgb)
    return atomic.write_bytes(path, data)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB (used for our own PNG outputs; photos go through alignment's reader)."""
    with open_regular(path) as handle:  # a FIFO named like a crop must not block the batch
        data = np.frombuffer(handle.read(), dtype=np.uint8)
    if data.size == 0:  # cv2.imdecode aborts on an empty buffer instead of returning None
        raise ValueError("not a readable image (empty file, 0 bytes)")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f"not a readable image ({str(exc).strip().splitlines()[-1]})") from None
    if bgr is None:
        raise ValueError("not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def make_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 4, background: int = 255) -> np.ndarray:
    """Tile equally sized RGB images into one picture: rows[r][c] at row r, column c."""
    if not rows or not rows[0]:
        raise ValueError("make_grid needs at least one image")
    height, width = rows[0][0].shape[:2]
    num_rows, num_cols = len(rows), max(len(row) for row in rows)
    grid = np.full(
        (num_rows * height + (num_rows + 1) * pad, num_cols * width + (num_cols + 1) * pad, 3),
        background,
        dtype=np.uint8,
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            grid[top : top + height, left : left + width] = image
    return grid


LABEL_HEADER = 24  # pixels of the strip that carries column labels


def label_grid(grid: np.ndarray, cell_width: int, pad: int, column_labels: Sequence[str],
               row_labels: Sequence[str] | None = None, cell_height: int | None = None) -> np.ndarray:
    """Add a header strip naming the columns (e.g. strengths) and, optionally, a left strip naming the
    rows (e.g. edits) to a grid from `make_grid`. The grid itself is copied unchanged below/right of them."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    cell_height = cell_width if cell_height is None else cell_height
    left = 0
    if row_labels:
        left = max(cv2.getTextSize(text, font, scale, thickness)[0][0] for text in row_labels) + 2 * pad + 4
    out = np.full((grid.shape[0] + LABEL_HEADER, grid.shape[1] + left, 3), 255, np.uint8)
    out[LABEL_HEADER:, left:] = grid
    for c, text in enumerate(column_labels):
        (width, _), _ = cv2.getTextSize(text, font, scale, thickness)
        x = left + pad + c * (cell_width + pad) + (cell_width - width) // 2
        cv2.putText(out, text, (x, LABEL_HEADER - 7), font, scale, (40, 40, 40), thickness, cv2.LINE_AA)
    for r, text in enumerate(row_labels or []):
        y = LABEL_HEADER + pad + r * (cell_height + pad) + cell_height // 2 + 5
        cv2.putText(out, text, (pad + 2, y), font, scale, (40, 40, 40), thickness, cv2.LINE_AA)
    return out
