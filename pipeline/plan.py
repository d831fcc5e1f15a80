"""What `run` is about to do, said before the long part: photos, faces, steps, device, and the time
the inversion will take, measured by a short warm-up on this device with these models.

On CPU a 1024 px generator takes minutes per face; a user should learn that, and what makes it
faster, before waiting for it rather than from a silent log.
"""

from __future__ import annotations

from typing import Callable

from common.progress import format_duration

LONG_SECONDS = 300.0  # past this estimate, the plan says how to make the job faster
# The warm-up costs about three optimisation steps: worth it from a few faces' worth of steps on (below that
# the job is short, and its status lines give the rate after the first steps anyway).
WARM_UP_FROM_STEPS = 300


def plan_lines(photos: int, faces: int, to_invert: int, steps: int, device: str,
               seconds_per_face: float | None) -> list[str]:
    """The plan, in lines for stderr: what will be done, and (when measured) how long it should take."""
    done_before = faces - to_invert
    lines = [f"plan: {photos} photo(s), {faces} face(s); {to_invert} to invert"
             + (f" ({done_before} done before)" if done_before else "")
             + (f" with {steps} optimisation step(s) each" if steps else " with the encoder only (--steps 0)")
             + f" on {device}"]
    if seconds_per_face is None:
        return lines
    total = seconds_per_face * to_invert
    lines.append(f"plan: warm-up measured {_seconds(seconds_per_face)} per face -> inversion about {format_duration(total)}, "
                 f"then directions and edits")
    return lines + sooner_lines(total, steps, device)


def sooner_lines(total: float, steps: int, device: str) -> list[str]:
    """For a long inversion, how to finish sooner."""
    if total <= LONG_SECONDS or not steps:
        return []
    faster = [f"--steps {max(1, steps // 4)} (faster, a little less faithful)", "--steps 0 (the encoder's codes only, seconds per face)"]
    if device == "cpu":
        faster.append("a GPU (--device cuda)")
    return ["plan: to finish sooner: " + ", ".join(faster)]


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else format_duration(value)


def say_plan(say: Callable[[str], None], photos: int, steps: int, device: str) -> Callable:
    """The `plan` callback of `run_invert`: measures (when it can) and says the plan."""

    def plan(to_invert: int, faces: int, measure: Callable[[], float] | None) -> None:
        seconds = measure() if measure is not None and steps > 0 and to_invert * steps >= WARM_UP_FROM_STEPS else None
        for line in plan_lines(photos, faces, to_invert, steps, device, seconds):
            say(line)

    return plan


def stream_estimate_lines(photos_to_align: int, steps: int, device: str, seconds_per_face: float) -> list[str]:
    """For a streamed `run`, which learns how many faces a photo has only once it is aligned: the measured
    time per face, and what it means for the photos left (at one face each: a lower bound)."""
    total = seconds_per_face * photos_to_align
    lines = [f"plan: warm-up measured {_seconds(seconds_per_face)} per face -> inversion at least "
             f"{format_duration(total)} for {photos_to_align} photo(s) (one face each; group photos take longer)"]
    return lines + sooner_lines(total, steps, device)


def say_stream_estimate(say: Callable[[str], None], photos_to_align: int, steps: int, device: str) -> Callable:
    """The `plan` callback of the inversion in a streamed `run`: measures (for a long enough job) and says it."""

    def plan(to_invert: int, faces: int, measure: Callable[[], float] | None) -> None:
        if measure is not None and steps > 0 and photos_to_align * steps >= WARM_UP_FROM_STEPS:
            for line in stream_estimate_lines(photos_to_align, steps, device, measure()):
                say(line)

    return plan
