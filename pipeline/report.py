"""OUT/index.html: what `run` did, photo by photo, readable by someone who did not run it.

The header names the generator (name or file, sha256 prefix, format, resolution), the encoder and
every setting that changed the result, and warns when the bundled untrained demo generator made
it. Each photo shows its original, then its edited versions with a before/after slider, then each
face: aligned crop, encoder-only and optimised reconstructions with PSNR/LPIPS, and the edit grid.
Photos and faces come in natural order (2 before 10). Everything that could not be used is listed
in words, by stage. Large photos are shown as thumbnails (OUT/report/thumbs) that link to the full
size, and every image loads lazily, so a page of hundreds of faces opens fast.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from common import atomic
from common.demo_models import DEMO_WARNING
from common.fingerprint import content_sha256
from common.identity import DRIFT_WARNING, SAME_PERSON, drifted
from common.images import read_rgb, save_rgb
from common.json_files import parse_json_text, read_json
from common.photo_io import read_photo

THUMB_SIDE = 640


@dataclass(frozen=True)
class ReportHeader:
    """What made the results; shown at the top of the page."""

    generator: str  # the name or file the user gave
    generator_sha256: str
    generator_format: str
    resolution: int
    encoder: str | None = None
    encoder_sha256: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    demo: bool = False
    directions_page: Path | None = None


def natural_key(text: str) -> list:
    """'face_2' before 'face_10': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


def _rel(path: Path, root: Path) -> str:
    """The link from OUT/index.html to `path`, wherever it lies (records hold absolute paths)."""
    return html.escape(Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix())


def _read_json(path: Path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _edit_and_strength(photo: Path) -> tuple[str, float]:
    """`photo_<edit>_<+1p50>.jpg` -> ("<edit>", 1.5), for ordering and captions."""
    edit, _, strength = photo.stem[len("photo_") :].rpartition("_")
    try:
        return edit, float(strength.replace("p", "."))
    except ValueError:
        return edit, 0.0


def _quality(psnr, lpips, identity=None) -> str:
    text = f"PSNR {psnr if psnr is not None else '?'} dB"
    text += f", LPIPS {lpips}" if lpips is not None else ""
    if isinstance(identity, (int, float)):
        text += f", identity {identity:.2f}" + (f" ({DRIFT_WARNING})" if drifted(identity) else "")
    elif isinstance(identity, str):
        text += f", identity: {html.escape(identity)}"
    return text


def _shared_by(faces) -> str:
    return f" shared by the photo's {faces} faces" if isinstance(faces, int) and faces > 1 else ""


def _bytes(count) -> str:
    if not isinstance(count, int):
        return "? MB"
    return f"{count / 2**20:.1f} MB" if count >= 2**20 else f"{count / 1024:.0f} KB"


def _identity_line(edits_dir: Path) -> str:
    """Each edit's identity distance to the photo (from the edit marker), the ones past the threshold marked."""
    marker = _read_json(edits_dir / ".edit.json")
    scores = marker.get("identity") if isinstance(marker, dict) and isinstance(marker.get("identity"), dict) else {}
    scores = {name: value for name, value in scores.items() if name != "reconstruction.png"}
    if not scores:
        return ""
    if len(set(map(str, scores.values()))) == 1 and isinstance(next(iter(scores.values())), str):
        return (f'<p class="identity">identity distance to the photo (dlib): {html.escape(str(next(iter(scores.values()))))} '
                f'in any of the {len(scores)} edits</p>')
    chips = []
    for name in sorted(scores, key=lambda n: (_edit_and_strength(Path("photo_" + Path(n).stem)))):
        value = scores[name]
        edit, strength = _edit_and_strength(Path("photo_" + Path(name).stem))
        shown = f"{value:.2f}" if isinstance(value, (int, float)) else html.escape(str(value))
        css = ' class="drift"' if drifted(value) else ""
        chips.append(f"<span{css}>{html.escape(edit)} {strength:+g}: {shown}</span>")
    far = sum(drifted(value) for value in scores.values())
    warning = f' <strong class="drift">{far} {DRIFT_WARNING}</strong>' if far else ""
    return (f'<p class="identity">identity distance to the photo (dlib; under {SAME_PERSON}: the same person):{warning} '
            + " ".join(chips) + "</p>")


def thumbnail(image: Path, out: Path, upright: bool = False) -> Path:
    """A JPEG of at most THUMB_SIDE pixels on a side, named by the image's content (so a rerun that
    changes nothing makes nothing new). `upright`: read as a photo (EXIF orientation applied), for originals."""
    thumb = out / "report" / "thumbs" / f"{content_sha256(image)[:20]}{'u' if upright else ''}.jpg"
    if not thumb.is_file():
        rgb = read_photo(image).rgb if upright else read_rgb(image)
        scale = min(1.0, THUMB_SIDE / max(rgb.shape[:2]))
        if scale < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                             interpolation=cv2.INTER_AREA)
        save_rgb(thumb, rgb)
    return thumb


def _img(path: Path, out: Path, alt: str, css: str = "", full: Path | None = None) -> str:
    """An <img> that loads lazily, linked to `full` (default: itself) for the full size."""
    target = full if full is not None else path
    return (f'<a href="{_rel(target, out)}"><img src="{_rel(path, out)}" alt="{html.escape(alt)}" loading="lazy" '
            f'decoding="async"{f" class={css!r}" if css else ""}></a>')


@dataclass
class _Face:
    name: str
    source: Path | None
    info: dict
    size: float | None = None
    box: tuple[float, float, float, float] | None = None  # the detected face in the photo: x0, y0, x1, y1
    photo_size: tuple[int, int] | None = None  # width, height of the (upright) photo the box is in


def _face_box(meta) -> tuple[tuple[float, float, float, float] | None, tuple[int, int] | None]:
    """The face's detection box and the photo size from its alignment sidecar (the quad's bounds when
    there is no box), or Nones when the sidecar does not say."""
    if not isinstance(meta, dict):
        return None, None
    size = meta.get("source_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        return None, None
    box = meta.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        quad = meta.get("quad")
        try:
            xs, ys = [float(p[0]) for p in quad], [float(p[1]) for p in quad]
            box = [min(xs), min(ys), max(xs), max(ys)]
        except (TypeError, ValueError, IndexError):
            return None, None
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3])), (size[0], size[1])


def _faces(out: Path) -> list[_Face]:
    faces = []
    codes = out / "codes"
    for info_path in codes.rglob("*.json") if codes.is_dir() else []:
        info = _read_json(info_path)
        if not isinstance(info, dict) or not isinstance(info.get("record"), dict):
            continue
        record = info["record"]
        if not all(isinstance(record.get(key), str) for key in ("aligned", "reconstruction")):
            continue
        meta = _read_json(Path(record["meta"])) if isinstance(record.get("meta"), str) else None
        source = Path(meta["source"]) if isinstance(meta, dict) and isinstance(meta.get("source"), str) else None
        name = info_path.relative_to(codes).with_suffix("").as_posix()
        box, photo_size = _face_box(meta)
        faces.append(_Face(name, source, info, box=box, photo_size=photo_size))
    return sorted(faces, key=lambda face: natural_key(face.name))


def _pasted_by_source(out: Path) -> dict[str, list[dict]]:
    """{photo path: [paste markers of its folders]} (one folder per photo, or per face with --per-face)."""
    found: dict[str, list[dict]] = {}
    photos = out / "photos"
    for marker_path in sorted(photos.glob("*/.paste.json")) if photos.is_dir() else []:
        marker = _read_json(marker_path)
        if isinstance(marker, dict) and isinstance(marker.get("photo"), str):
            marker["folder"] = marker_path.parent
            found.setdefault(str(Path(marker["photo"]).resolve()), []).append(marker)
    return found


def _face_block(face: _Face, number: int, out: Path, untouched: dict[str, object]) -> str:
    record, metrics = face.info["record"], face.info.get("metrics", {})
    cells = [f'<figure>{_img(Path(record["aligned"]), out, "aligned crop")}<figcaption>aligned crop</figcaption></figure>']
    encoder_only = record.get("encoder_reconstruction")
    if isinstance(encoder_only, str) and Path(encoder_only).is_file():
        cells.append(f'<figure>{_img(Path(encoder_only), out, "encoder only")}<figcaption>encoder only, '
                     f'{_quality(metrics.get("start_psnr"), metrics.get("start_lpips"), metrics.get("start_identity"))}</figcaption></figure>')
    label = f"optimised ({metrics.get('steps', '?')} steps)" if encoder_only else "reconstruction"
    cells.append(f'<figure>{_img(Path(record["reconstruction"]), out, "reconstruction")}<figcaption>{label}, '
                 f'{_quality(metrics.get("psnr"), metrics.get("lpips"), metrics.get("identity"))}</figcaption></figure>')
    tuned = record.get("tuned_reconstruction")
    if isinstance(tuned, str) and Path(tuned).is_file():
        cells.append(f'<figure>{_img(Path(tuned), out, "tuned")}<figcaption>pivotal tuning '
                     f'({metrics.get("tune_steps_run", "?")} steps, {_bytes(metrics.get("tuned_bytes"))}'
                     f'{_shared_by(metrics.get("tuned_faces"))}), '
                     f'{_quality(metrics.get("tuned_psnr"), metrics.get("tuned_lpips"), metrics.get("tuned_identity"))}'
                     f'</figcaption></figure>')
    grid = out / "edits" / face.name / "grid.png"
    if grid.is_file():
        cells.append(f'<figure class="wide">{_img(grid, out, "edit grid")}<figcaption>edits: rows = directions, '
                     f'columns = strengths (0 = reconstruction)</figcaption></figure>')
    note = (f' <small>left untouched in the photo: {untouched[face.name]} px, under the size limit</small>'
            if face.name in untouched else "")
    return (f'<div class="face" id="face-{html.escape(face.name)}"><h4><span class="number">{number}</span> '
            f'{html.escape(face.name)}{note}</h4><div class="row">{"".join(cells)}</div>'
            f'{_identity_line(out / "edits" / face.name)}</div>')


def _face_marks(faces: list[_Face], untouched: set[str]) -> str:
    """An SVG over the photo: a numbered box on each face, matching the numbers of the face list; faces
    left untouched (too small) dashed. Drawn in the photo's own pixels, so it fits any thumbnail size."""
    placed = [(number, face) for number, face in enumerate(faces, 1) if face.box is not None and face.photo_size is not None]
    if not placed:
        return ""
    width, height = placed[0][1].photo_size
    font = max(10.0, max(width, height) / 16)
    marks = []
    for number, face in placed:
        x0, y0, x1, y1 = face.box
        kind = "untouched" if face.name in untouched else "edited"
        marks.append(f'<g class="{kind}"><title>{number}: {html.escape(face.name)} ({kind})</title>'
                     f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}"/>'
                     f'<text x="{x0:.1f}" y="{max(font, y0 - font * 0.25):.1f}" font-size="{font:.1f}">{number}</text></g>')
    return (f'<svg class="marks" viewBox="0 0 {width} {height}" preserveAspectRatio="none" aria-hidden="true">'
            + "".join(marks) + "</svg>")


# The before/after control: the slider starts at 0, the edited photo shown whole (a group photo at 50 % would
# show half its faces unedited); dragging it reveals the original from the left; the button flips between
# all edited and all original.
SHOW_ORIGINAL = ("var s=this.closest('figure').querySelector('.stack'),r=s.querySelector('input'),"
                 "o=r.value==='0';r.value=o?100:0;s.style.setProperty('--pos',r.value+'%');"
                 "this.textContent=o?'show edited':'show original';")


def _comparison(original_thumb: Path, pasted: Path, out: Path, marks: str = "") -> str:
    """Before/after: the edited photo over the original; the original revealed from the left by the slider."""
    edit, strength = _edit_and_strength(pasted)
    after = thumbnail(pasted, out)
    caption = f"{html.escape(edit)} at {strength:+g}"
    return (f'<figure class="compare"><div class="stack" style="--pos: 0%">'
            f'<img src="{_rel(original_thumb, out)}" alt="original" loading="lazy" decoding="async">'
            f'<img class="after" src="{_rel(after, out)}" alt="{caption}" loading="lazy" decoding="async">{marks}'
            f'<input type="range" min="0" max="100" value="0" aria-label="original revealed from the left, in percent" '
            f'oninput="this.parentNode.style.setProperty(\'--pos\', this.value + \'%\')"></div>'
            f'<figcaption>{caption}, faces in solid boxes edited; drag the slider to see the original on the left; '
            f'<button type="button" class="flip" onclick="{SHOW_ORIGINAL}">show original</button> '
            f'<a href="{_rel(pasted, out)}">full size</a></figcaption></figure>')


def _photo_section(source: Path | None, faces: list[_Face], markers: list[dict], out: Path) -> str:
    title = source.name if source is not None else "faces without a known photo"
    parts = [f'<section class="photo"><h2>{html.escape(title)}</h2>']
    untouched = [entry for marker in markers for entry in marker.get("untouched", []) if isinstance(entry, dict)]
    summary = f"{len(faces)} face(s)"
    if untouched:
        limit = next((m.get("min_face_size") for m in markers if m.get("min_face_size") is not None), "?")
        summary += (f"; left untouched, smaller than {limit} px: "
                    + ", ".join(f"{html.escape(str(e.get('face')))} ({e.get('size')} px)" for e in untouched))
    parts.append(f'<p class="source">{html.escape(str(source or ""))} · {summary}</p>')
    untouched_names = {str(entry.get("face")) for entry in untouched}
    marks = _face_marks(faces, untouched_names)
    original_thumb = None
    if source is not None and source.is_file():
        try:
            original_thumb = thumbnail(source, out, upright=True)
            legend = "original; numbered boxes: the faces listed below" + (", dashed: left untouched" if untouched_names else "")
            parts.append(f'<div class="row"><figure><div class="marked">'
                         f'{_img(original_thumb, out, "original", "photo", full=source)}{marks}</div>'
                         f'<figcaption>{legend if marks else "original"}</figcaption></figure></div>')
        except (OSError, ValueError):  # UnreadableImage is a ValueError
            original_thumb = None
    pasted = [Path(p) for marker in markers for p in marker.get("outputs", [])
              if isinstance(p, str) and Path(p).name.startswith("photo_") and Path(p).suffix in (".jpg", ".png") and Path(p).is_file()]
    if pasted and original_thumb is not None:
        pasted.sort(key=lambda p: (natural_key(p.parent.name), _edit_and_strength(p)))
        parts.append('<h3>edited photos</h3><div class="row">'
                     + "".join(_comparison(original_thumb, p, out, marks) for p in pasted) + "</div>")
    sweeps = [Path(p) for marker in markers for p in marker.get("outputs", [])
              if isinstance(p, str) and Path(p).suffix in (".mp4", ".gif") and Path(p).is_file()]
    if sweeps:
        figures = []
        for sweep in sorted(sweeps):
            media = (f'<video src="{_rel(sweep, out)}" controls loop muted playsinline preload="metadata"></video>'
                     if sweep.suffix == ".mp4" else f'<img src="{_rel(sweep, out)}" alt="sweep" loading="lazy">')
            figures.append(f'<figure class="sweep">{media}<figcaption>sweep of {html.escape(sweep.parent.name)}: '
                           f'{html.escape(sweep.stem[len("photo_"):])}</figcaption></figure>')
        parts.append('<h3>sweeps</h3><div class="row">' + "".join(figures) + "</div>")
    small = {str(entry.get("face")): entry.get("size") for entry in untouched}
    parts.append("<h3>faces</h3>" + "".join(_face_block(face, number, out, small) for number, face in enumerate(faces, 1)))
    return "".join(parts) + "</section>"


FAILURE_FILES = (("aligned", "alignment", "source"), ("codes", "inversion", "aligned"), ("edits", "editing", "code"))


def _failures(out: Path) -> list[tuple[str, str, str]]:
    """(stage, file, reason in words) of every item a stage could not use."""
    rows = []
    for folder, stage, key in FAILURE_FILES:
        path = out / folder / "failures.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = parse_json_text(line)
                rows.append((stage, str(record.get(key) or record.get("source") or "?"),
                             str(record.get("reason") or record.get("error") or "unknown reason")))
            except (ValueError, AttributeError):
                continue
    return list(dict.fromkeys(rows))


def _header_html(header: ReportHeader | None, out: Path) -> str:
    if header is None:
        return ""
    rows = [("generator", f"{header.generator} (sha256 {header.generator_sha256[:12]}…, {header.generator_format}, "
                          f"{header.resolution}×{header.resolution})")]
    rows.append(("encoder", f"{header.encoder} (sha256 {header.encoder_sha256[:12]}…)" if header.encoder and header.encoder_sha256
                 else header.encoder or "none: optimisation from the mean code"))
    rows += sorted(header.settings.items())
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    banner = f'<p class="banner" role="alert">{html.escape(DEMO_WARNING)}</p>' if header.demo else ""
    link = ""
    if header.directions_page is not None and Path(header.directions_page).is_file():
        link = (f'<p><a href="{_rel(header.directions_page, out)}">What the directions do</a>: samples moved along each '
                f'direction, its layers and its share of the eigenvalue spectrum.</p>')
    return f'{banner}<table class="settings">{table}</table>{link}'


def write_index(out: Path, title: str, header: ReportHeader | None = None) -> Path:
    faces = _faces(out)
    markers = _pasted_by_source(out)
    by_source: dict[str, list[_Face]] = {}
    for face in faces:
        by_source.setdefault(str(face.source.resolve()) if face.source is not None else "", []).append(face)
    sections = []
    for key in sorted(by_source, key=lambda k: natural_key(Path(k).name if k else "~")):
        source = Path(key) if key else None
        sections.append(_photo_section(source, by_source[key], markers.get(key, []), out))
    failures = _failures(out)
    failed = "".join(f"<tr><td>{html.escape(stage)}</td><td>{html.escape(Path(item).name)}</td><td>{html.escape(reason)}</td></tr>"
                     for stage, item, reason in failures)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.banner {{ background: #fff3cd; border: 1px solid #e0c36a; padding: 0.6em 1em; font-weight: 600; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} th, td {{ text-align: left; padding: 2px 10px; vertical-align: top; }}
.row {{ display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }}
figure {{ margin: 0; }} figure img {{ width: 192px; }} figure.wide img {{ width: auto; max-width: 100%; max-height: 420px; }}
figure img.photo {{ width: auto; height: 240px; border: 1px solid #ddd; }}
.compare .stack {{ position: relative; display: inline-block; }}
.compare .stack img {{ display: block; width: auto; height: 240px; }}
.compare .stack img.after {{ position: absolute; top: 0; left: 0; clip-path: inset(0 0 0 var(--pos)); }}
.compare .stack input {{ position: absolute; left: 0; bottom: 4px; width: 100%; margin: 0; }}
.marked {{ position: relative; display: inline-block; line-height: 0; }}
svg.marks {{ position: absolute; top: 0; left: 0; width: 100%; height: 100%; pointer-events: none; overflow: visible; }}
svg.marks rect {{ fill: none; stroke: #ffd400; stroke-width: 2px; vector-effect: non-scaling-stroke; }}
svg.marks text {{ fill: #ffd400; font-weight: 700; paint-order: stroke; stroke: #000; stroke-width: 3px; vector-effect: non-scaling-stroke; }}
svg.marks g.untouched rect {{ stroke: #bbb; stroke-dasharray: 4 3; }} svg.marks g.untouched text {{ fill: #bbb; }}
.number {{ display: inline-block; min-width: 1.4em; text-align: center; background: #ffd400; border-radius: 3px; }}
button.flip {{ font-size: 0.95em; }}
.identity {{ font-size: 0.85em; color: #555; }} .identity span {{ margin-right: 0.8em; white-space: nowrap; }}
.drift {{ color: #b00020; font-weight: 600; }}
.sweep video, .sweep img {{ max-height: 320px; width: auto; }}
figcaption, .source {{ color: #666; font-size: 0.85em; }}
section.photo {{ border-top: 1px solid #ddd; padding-top: 1em; margin-top: 1em; }}
.face h4 {{ margin: 0.8em 0 0.3em; font-weight: 600; }} .face h4 small {{ color: #a05a00; font-weight: normal; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{_header_html(header, out)}
{''.join(sections) or '<p>No faces were inverted.</p>'}
{('<h2>Could not be used</h2><table><tr><th>stage</th><th>file</th><th>why</th></tr>' + failed + '</table>') if failed else ''}
</body></html>
"""
    written = atomic.write_text(out / "index.html", page)
    thumbs = out / "report" / "thumbs"
    for stale in thumbs.glob("*.jpg") if thumbs.is_dir() else []:
        if stale.name not in page:  # not linked from the page: of photos replaced or edits redone since
            stale.unlink(missing_ok=True)
    return written
