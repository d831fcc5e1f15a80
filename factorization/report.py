"""The HTML page of a factorisation: spectrum, and each direction's preview grid with its eigenvalue."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import numpy as np

from common import atomic
from common.demo_models import DEMO_WARNING
from common.layer_spec import format_layer_spec
from factorization.spectrum import spectrum_svg


def write_report(
    path: Path,
    title: str,
    checkpoint_info: dict,
    layers_text: str,
    eigenvalues: np.ndarray,
    all_eigenvalues: np.ndarray,
    preview_paths: Sequence[Path],
    strengths: Sequence[float],
    labels: dict | None = None,
    demo: bool = False,
    preview_hint: str | None = None,
) -> Path:
    """`labels`: {name: DirectionLabel} from labels.json; each direction's heading names its labels.
    `preview_hint`: the command that renders the grids, said on a page that has none (a page of
    eigenvalues alone does not show what a direction does)."""
    total = float(np.clip(all_eigenvalues, 0, None).sum()) or 1.0
    named: dict[int, list[str]] = {}
    for name, label in (labels or {}).items():
        sign = "+" if label.sign > 0 else "-"
        where = f" on layers {format_layer_spec(label.layers)}" if label.layers else ""
        named.setdefault(label.index, []).append(f"{name} ({sign}{where})")
    rows = []
    for k, value in enumerate(eigenvalues):
        image = ""
        if k < len(preview_paths):
            rel = html.escape(Path(preview_paths[k]).relative_to(path.parent).as_posix())
            image = f'<img src="{rel}" alt="direction {k}" loading="lazy">'
        rows.append(
            f"<section><h3>direction {k}" + (f": {html.escape(', '.join(named[k]))}" if k in named else "")
            + f" <small>layers {html.escape(layers_text)} · eigenvalue {value:.4g} · {value / total:.1%} of the spectrum"
            f"</small></h3>{image}</section>"
        )
    header = ""
    if preview_paths:
        header = "<p>columns: strength " + ", ".join(f"{s:+.2g}" for s in strengths) + "; rows: samples</p>"
    elif preview_hint:
        header = (f'<p class="hint">No sample grids were rendered, so this page cannot show what each direction does. '
                  f'Render them (samples moved from &minus;3 to +3 along each direction) with '
                  f'<code>{html.escape(preview_hint)}</code>, or add <code>--preview</code> to <code>sefa-edit run</code>.</p>')
    info = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in checkpoint_info.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
img {{ max-width: 100%; image-rendering: auto; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} th, td {{ text-align: left; padding: 2px 10px; }}
small {{ color: #666; font-weight: normal; }}
.hint {{ background: #eef4ff; border: 1px solid #a9c1ea; padding: 0.6em 1em; }}
.banner {{ background: #fff3cd; border: 1px solid #e0c36a; padding: 0.6em 1em; font-weight: 600; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{f'<p class="banner" role="alert">{html.escape(DEMO_WARNING)}</p>' if demo else ''}
<table>{info}<tr><th>layers</th><td>{html.escape(layers_text)}</td></tr></table>
<h2>Eigenvalue spectrum</h2>
{spectrum_svg(all_eigenvalues, highlight=len(eigenvalues))}
<p><small>bars: each direction's share of the trace of AᵀA (first {min(64, len(all_eigenvalues))} of {len(all_eigenvalues)};
blue: the {len(eigenvalues)} kept); line: cumulative share. A steep start means a few directions dominate.</small></p>
<h2>Directions</h2>{header}
{''.join(rows)}
</body></html>
"""
    return atomic.write_text(path, page)
