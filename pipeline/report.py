"""OUT/index.html: each face beside its reconstruction, its edit grid, and the pasted-back photos."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from common import atomic


def _rel(path: Path, root: Path) -> str:
    """The link from OUT/index.html to `path`, wherever it lies (records hold absolute paths)."""
    return html.escape(Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix())


def _edit_and_strength(photo: Path) -> tuple[str, float]:
    """`photo_<edit>_<+1p50>.jpg` -> ("<edit>", 1.5), for ordering and captions."""
    edit, strength = photo.stem[len("photo_") :].rsplit("_", 1)
    try:
        return edit, float(strength.replace("p", "."))
    except ValueError:
        return edit, 0.0


def _quality(psnr, lpips) -> str:
    text = f"PSNR {psnr if psnr is not None else '?'} dB"
    return text + (f", LPIPS {lpips}" if lpips is not None else "")


def write_index(out: Path, title: str) -> Path:
    sections = []
    codes = out / "codes"
    for info_path in sorted(codes.rglob("*.json")):
        try:
            info = json.loads(info_path.read_text())
            record = info["record"]
            Path(record["aligned"]), Path(record["reconstruction"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        name = info_path.relative_to(codes).with_suffix("").as_posix()
        aligned, reconstruction = Path(record["aligned"]), Path(record["reconstruction"])
        grid = out / "edits" / name / "grid.png"
        photos = sorted((out / "photos" / name).glob("photo_*.jpg")) if (out / "photos" / name).is_dir() else []
        source = None
        if record.get("meta") and Path(record["meta"]).is_file():
            try:
                meta = json.loads(Path(record["meta"]).read_text())
                source = meta.get("source") if isinstance(meta, dict) else None
            except (OSError, ValueError):
                source = None
        metrics = info.get("metrics", {})
        cells = [f'<figure><img src="{_rel(aligned, out)}" alt="aligned"><figcaption>aligned crop</figcaption></figure>']
        encoder_only = record.get("encoder_reconstruction")
        if encoder_only and Path(encoder_only).is_file():
            cells.append(f'<figure><img src="{_rel(Path(encoder_only), out)}" alt="encoder only"><figcaption>encoder only, '
                         f'{_quality(metrics.get("start_psnr"), metrics.get("start_lpips"))}</figcaption></figure>')
        label = f"optimised ({metrics.get('steps', '?')} steps)" if encoder_only else "reconstruction"
        cells.append(f'<figure><img src="{_rel(reconstruction, out)}" alt="reconstruction"><figcaption>{label}, '
                     f'{_quality(metrics.get("psnr"), metrics.get("lpips"))}</figcaption></figure>')
        if grid.is_file():
            cells.append(f'<figure class="wide"><img src="{_rel(grid, out)}" alt="edits"><figcaption>edits: rows = directions, '
                         f'columns = strengths (0 = reconstruction)</figcaption></figure>')
        photos = sorted(photos, key=_edit_and_strength)
        pasted = "".join(
            f'<figure><a href="{_rel(p, out)}"><img class="photo" src="{_rel(p, out)}" alt="{html.escape(p.stem)}"></a>'
            f'<figcaption>{html.escape(_edit_and_strength(p)[0])} at {_edit_and_strength(p)[1]:+g}</figcaption></figure>'
            for p in photos
        )
        sections.append(
            f"<section><h2>{html.escape(name)}</h2><p class=\"source\">{html.escape(str(source or ''))}</p>"
            f"<div class=\"row\">{''.join(cells)}</div>"
            + (f"<h3>edited photos</h3><div class=\"row\">{pasted}</div>" if pasted else "")
            + "</section>"
        )
    failures = out / "aligned" / "failures.jsonl"
    failed = []
    if failures.is_file():
        for line in failures.read_text().splitlines():
            try:
                record = json.loads(line)
                reason = record.get("reason") or record["error"]
                failed.append(f"<li>{html.escape(str(record['source']))}: {html.escape(str(reason))}</li>")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.row {{ display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }}
figure {{ margin: 0; }} figure img {{ width: 192px; image-rendering: auto; }} figure.wide img {{ width: auto; max-width: 100%; max-height: 420px; }}
figure img.photo {{ width: auto; height: 220px; border: 1px solid #ddd; }}
figcaption, .source {{ color: #666; font-size: 0.85em; }}
section {{ border-top: 1px solid #ddd; padding-top: 1em; margin-top: 1em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{''.join(sections) or '<p>No faces were inverted.</p>'}
{('<h2>Not aligned</h2><ul>' + ''.join(dict.fromkeys(failed)) + '</ul>') if failed else ''}
</body></html>
"""
    return atomic.write_text(out / "index.html", page)
