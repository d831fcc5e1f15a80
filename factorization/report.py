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
    descriptions: Sequence[dict] | None = None,
    origins: Sequence[str] | None = None,
    comparison: Sequence[str] = (),
) -> Path:
    """`labels`: {name: DirectionLabel} from labels.json; each direction's heading names its labels.
    `preview_hint`: the command that renders the grids, said on a page that has none (a page of
    eigenvalues alone does not show what a direction does). `origins`: per direction, where it comes
    from when it is not SeFa's own (GANSpace, an InterFaceGAN boundary); their `eigenvalues` are then
    SeFa's objective ||A n||^2 for them, set beside SeFa's spectrum. `comparison`: lines on how they
    compare with SeFa's directions."""
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
        if origins is None:
            strength = f"eigenvalue {value:.4g} · {value / total:.1%} of the spectrum"
        else:
            strength = (f"SeFa objective ‖An‖² {value:.4g} (SeFa's largest: {float(np.max(all_eigenvalues)):.4g})"
                        if np.isfinite(value) else "")
        origin = f'<p class="origin">from {html.escape(origins[k])}</p>' if origins is not None and k < len(origins) else ""
        rows.append(
            f"<section><h3>direction {k}" + (f": {html.escape(', '.join(named[k]))}" if k in named else "")
            + f" <small>layers {html.escape(layers_text)}{' · ' + strength if strength else ''}"
            f"</small></h3>{origin}{description_html(descriptions[k]) if descriptions and k < len(descriptions) else ''}{image}</section>"
        )
    header = ""
    if descriptions:
        header += ("<p><small>Measured by <code>--describe</code> on seeded samples moved to each end: each bar is a "
                   "measure's change over the whole range in units of a clear change (1 = e.g. 15° of yaw, 0.08 of "
                   "luminance, a 15 % larger face; dark from 1 on), to the left for a decrease.</small></p>")
    if preview_paths:
        header += "<p>columns: strength " + ", ".join(f"{s:+.2g}" for s in strengths) + "; rows: samples</p>"
    elif preview_hint:
        header += (f'<p class="hint">No sample grids were rendered, so this page cannot show what each direction does. '
                  f'Render them (samples moved from &minus;3 to +3 along each direction) with '
                  f'<code>{html.escape(preview_hint)}</code>, or add <code>--preview</code> to <code>sefa-edit run</code>.</p>')
    if comparison:
        header = ("<h3>Compared with SeFa on the same layers</h3><ul>"
                  + "".join(f"<li>{html.escape(line)}</li>" for line in comparison) + "</ul>" + header)
    info = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in checkpoint_info.items())
    if origins is None:
        spectrum_section = (f"<h2>Eigenvalue spectrum</h2>\n{spectrum_svg(all_eigenvalues, highlight=len(eigenvalues))}\n"
                            f"<p><small>bars: each direction's share of the trace of AᵀA (first {min(64, len(all_eigenvalues))} "
                            f"of {len(all_eigenvalues)}; blue: the {len(eigenvalues)} kept); line: cumulative share. A steep "
                            f"start means a few directions dominate.</small></p>")
    else:
        spectrum_section = (f"<h2>SeFa's spectrum of these layers, for comparison</h2>\n{spectrum_svg(all_eigenvalues, highlight=0)}\n"
                            f"<p><small>These directions are not SeFa's: each one's ‖An‖² below says how strongly the "
                            f"layers respond to it, on the scale of these eigenvalues (SeFa's direction k has the k-th "
                            f"largest).</small></p>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
img {{ max-width: 100%; image-rendering: auto; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} th, td {{ text-align: left; padding: 2px 10px; }}
small {{ color: #666; font-weight: normal; }}
.measures {{ display: flex; gap: 2em; align-items: flex-start; margin: 0.5em 0; }} .measures td {{ font-variant-numeric: tabular-nums; }}
.suggest {{ background: #eefaf0; border: 1px solid #8fc79a; padding: 0.2em 0.6em; }}
.origin {{ color: #555; margin: 0.2em 0; }}
.hint {{ background: #eef4ff; border: 1px solid #a9c1ea; padding: 0.6em 1em; }}
.banner {{ background: #fff3cd; border: 1px solid #e0c36a; padding: 0.6em 1em; font-weight: 600; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{f'<p class="banner" role="alert">{html.escape(DEMO_WARNING)}</p>' if demo else ''}
<table>{info}<tr><th>layers</th><td>{html.escape(layers_text)}</td></tr></table>
{spectrum_section}
<h2>Directions</h2>{header}
{''.join(rows)}
</body></html>
"""
    return atomic.write_text(path, page)


# Units of each measure's change per unit strength, for the table.
_UNITS = {"yaw": "°", "pitch": "°", "roll": "°", "skin_hue": "°", "hair_hue": "°", "background_hue": "°",
          "face_size": "× size"}


def description_html(description: dict) -> str:
    """What `factorize --describe` measured for one direction: the suggested label, a table of the
    measures that moved most, and a bar chart of every measure's effect (signed, in clear-change units)."""
    if description.get("note"):
        return f'<p class="hint">{html.escape(description["note"])}: nothing to measure ({description["faces_found"]} of ' \
               f'{description["samples"]} samples had a face at both ends).</p>'
    measures = sorted(description["measures"].items(), key=lambda item: item[1]["effect"], reverse=True)
    suggested = description.get("suggested_label")
    head = (f'<p><span class="suggest">suggested label <b>{html.escape(suggested["label"])}</b>, confidence '
            f'{suggested["confidence"]:.0%}</span> ' if suggested else "<p>")
    identity = description.get("identity_change")
    head += (f'<small>render changed {description["pixel_change"]:.1%} · identity distance between the ends '
             f'{"-" if identity is None else f"{identity:.2f}"} · faces in {description["faces_found"]}/{description["samples"]} samples</small></p>')
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{values['per_unit']:+.3g}{_UNITS.get(name, '')} per unit</td>"
        f"<td>{values['consistency']:.0%} of samples</td></tr>" for name, values in measures[:6])
    table = f"<table><tr><th>measure</th><th>change</th><th>same way</th></tr>{rows}</table>"
    return f'{head}<div class="measures">{table}{_effect_bars(measures)}</div>'


def _effect_bars(measures: list[tuple[str, dict]]) -> str:
    """An SVG bar per measure: length = effect over the range (1 = a clear change), left for a decrease."""
    row, width, half = 14, 360, 110
    names = sorted(name for name, _ in measures)
    values = dict(measures)
    parts = [f'<svg width="{width}" height="{row * len(names) + 4}" role="img" aria-label="effect of each measure">']
    parts.append(f'<line x1="{width - half - 4}" y1="0" x2="{width - half - 4}" y2="{row * len(names)}" stroke="#999"/>')
    for i, name in enumerate(names):
        effect = min(values[name]["effect"], 2.0) * (1 if values[name]["per_unit"] >= 0 else -1)
        length = abs(effect) / 2 * half
        x = width - half - 4 + (0 if effect >= 0 else -length)
        y = i * row + 2
        colour = "#2b7bd6" if abs(effect) >= 1 else "#9bbbe3"
        parts.append(f'<text x="0" y="{y + 10}" font-size="11">{html.escape(name)}</text>'
                     f'<rect x="{x:.1f}" y="{y}" width="{length:.1f}" height="{row - 4}" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)
