"""`sefa-edit`: the command-line face of the four stages (align, invert, factorize, edit) and `run`.

Each command parses options, calls its stage, prints machine-readable JSON lines on stdout and
human messages on stderr. A `UserError` from any stage becomes `error: <one line>` and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from common.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Edit real face photos with StyleGAN + SeFa.")
models_app = typer.Typer(no_args_is_help=True, help="Inspect generator checkpoints.")
app.add_typer(models_app, name="models")


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def _say(message: str) -> None:
    typer.echo(message, err=True)


@models_app.command("info")
def models_info(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint: NVIDIA .pkl, rosinality .pt, genforce .pth, BigGAN .bin"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Format, architecture, resolution, number of W+ layers and parameter count of a checkpoint."""
    from generators.checkpoint import load_checkpoint

    info = load_checkpoint(checkpoint).describe()
    if as_json:
        _emit(info)
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        typer.echo(f"{key:<{width}}  {value}")


@app.command()
def factorize(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for directions.npz, spectrum.png, index.html."),
    layers: str = typer.Option("all", "--layers", "-l", help="Layers whose latent weights are factorised: all, 0-1, 2-5, 6-, 0,3,5."),
    num_directions: int = typer.Option(5, "-K", "--num-directions", help="How many top directions to keep."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="JSON naming directions: {\"age\": {\"index\": 3, \"sign\": -1}}."),
    preview: bool = typer.Option(False, "--preview", help="Render a grid per direction and an HTML page (StyleGAN2)."),
    num_samples: int = typer.Option(5, "-N", "--num-samples", help="Preview rows: random samples."),
    distance: float = typer.Option(3.0, "--distance", help="Preview strengths run from -distance to +distance."),
    steps: int = typer.Option(7, "--steps", help="Preview columns: strengths."),
    seed: int = typer.Option(0, "--seed", help="Seed of the preview samples."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (previews only)."),
) -> None:
    """SeFa: closed-form semantic directions from the generator's weights (no data, no training)."""
    from factorization.preview import PreviewSettings
    from factorization.stage import run_factorize

    settings = PreviewSettings(num_samples=num_samples, distance=distance, steps=steps, seed=seed) if preview else None
    if settings is not None and (num_samples < 1 or steps < 2 or distance <= 0):
        raise UserError("--preview needs -N >= 1, --steps >= 2 and --distance > 0")
    result = run_factorize(checkpoint, out, layers, num_directions, labels, settings, device)
    _emit(
        {
            "directions": str(result.directions_path),
            "num_directions": result.num_directions,
            "layers": result.layers,
            "report": str(result.report_path),
            "seconds": round(result.seconds, 6),
        }
    )
    _say(f"{result.num_directions} directions over layers {result.layers} in {result.seconds * 1000:.1f} ms -> {out}")


@app.command()
def align(
    input: str = typer.Argument(..., help="A photo, a folder of photos (recursive), or - for paths / JSON lines on stdin."),
    out: Path = typer.Argument(..., help="Output folder for aligned crops and their sidecar JSON."),
    size: int = typer.Option(256, "--size", help="Crop size: 256, 512 or 1024."),
    detector: str = typer.Option("hog", "--detector", help="hog (fast) or cnn (dlib's mmod detector: slower, finds more)."),
    landmarks: str = typer.Option("68", "--landmarks", help="68 (exact FFHQ definition) or 5 (faster; mouth estimated)."),
    largest: bool = typer.Option(False, "--largest", help="Keep only the largest face of each photo."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo photos that an earlier run finished."),
    upsample: int = typer.Option(1, "--upsample", help="Detector upsampling: 1 finds faces down to ~40 px, 0 is faster."),
) -> None:
    """Detect faces, fit landmarks and cut FFHQ-aligned crops (with the transform kept for paste-back)."""
    from alignment.stage import AlignOptions, run_align, summary_line

    options = AlignOptions(size=size, detector=detector, landmarks=landmarks, largest=largest, overwrite=overwrite, upsample=upsample)
    summary = run_align(input, out, options, emit=_emit, say=_say)
    _say(summary_line(summary, out))
    if summary.crops == 0:
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: run the app, turning user errors into one line and exit status 2."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code != 0:  # typer.Exit(n) is returned, not raised, in this mode
            raise SystemExit(code)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted; finished outputs are kept, rerun to continue", err=True)
        raise SystemExit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            raise SystemExit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
