"""The eigenvalue spectrum as a picture: how much of A^T A's energy the first directions hold.

Drawn with OpenCV (no plotting library needed) as a PNG, and as an inline SVG for the HTML page.
"""

from __future__ import annotations

import cv2
import numpy as np


def _normalised(eigenvalues: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0, None)
    total = values.sum() or 1.0
    share = values / total
    return share[:limit], np.cumsum(share)[:limit]


def spectrum_png(eigenvalues: np.ndarray, highlight: int, limit: int = 64, size: tuple[int, int] = (900, 420)) -> np.ndarray:
    """RGB image: one bar per eigenvalue (share of the total), the first `highlight` in colour, and the
    cumulative share as a line."""
    share, cumulative = _normalised(eigenvalues, limit)
    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    image = np.full((height, width, 3), 255, np.uint8)
    peak = max(share.max(), 1e-12)
    bar_w = plot_w / len(share)
    for i, value in enumerate(share):
        x0 = int(left + i * bar_w + 1)
        x1 = int(left + (i + 1) * bar_w - 1)
        y0 = int(top + plot_h * (1 - value / peak))
        colour = (214, 96, 36) if i < highlight else (170, 170, 170)
        cv2.rectangle(image, (x0, y0), (max(x0, x1), top + plot_h), colour, thickness=-1)
    points = np.array(
        [(int(left + (i + 0.5) * bar_w), int(top + plot_h * (1 - c))) for i, c in enumerate(cumulative)], np.int32
    )
    cv2.polylines(image, [points], isClosed=False, color=(40, 120, 40), thickness=2, lineType=cv2.LINE_AA)
    cv2.line(image, (left, top + plot_h), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    cv2.line(image, (left, top), (left, top + plot_h), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, f"SeFa eigenvalue spectrum of A^T A: each direction's share of the trace (first {len(share)})",
                (left, 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f"blue: the {highlight} directions kept, grey: the rest; green line: cumulative share (top = 100%)",
                (left, 34), font, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(image, f"{peak:.1%}", (5, top + 10), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "100% cum.", (5, top + 28), font, 0.4, (40, 120, 40), 1, cv2.LINE_AA)
    for i in range(0, len(share), max(1, len(share) // 8)):
        cv2.putText(image, str(i), (int(left + i * bar_w), height - 25), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "direction index", (left + plot_w // 2 - 60, height - 6), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def spectrum_svg(eigenvalues: np.ndarray, highlight: int, limit: int = 64) -> str:
    share, cumulative = _normalised(eigenvalues, limit)
    width, height, pad = 720, 220, 24
    peak = max(share.max(), 1e-12)
    bar_w = (width - 2 * pad) / len(share)
    bars = []
    for i, value in enumerate(share):
        h = (height - 2 * pad) * value / peak
        colour = "#2460d6" if i < highlight else "#aaaaaa"
        bars.append(
            f'<rect x="{pad + i * bar_w:.1f}" y="{height - pad - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>#{i}: {value:.2%} (cum. {cumulative[i]:.1%})</title></rect>'
        )
    line = " ".join(
        f"{pad + (i + 0.5) * bar_w:.1f},{height - pad - (height - 2 * pad) * c:.1f}" for i, c in enumerate(cumulative)
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="eigenvalue spectrum">{"".join(bars)}'
        f'<polyline points="{line}" fill="none" stroke="#288028" stroke-width="2"/></svg>'
    )
