"""Sweep animations (one direction, strength by strength, there and back) as GIF or H.264 MP4.

MP4 goes through PyAV, whose wheels ship FFmpeg with libx264: H.264 High profile, yuv420p, with the
index at the front (`+faststart`), which every browser plays inline. OpenCV's writer only gives
MPEG-4 Part 2 here, which browsers refuse. Large frames (whole photos) are scaled to at most
`MAX_SIDE` pixels and to even sizes, which 4:2:0 chroma needs. Both writers write to a temporary
file and read it back before it takes the final name, so a full disk never leaves a short video.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from common import atomic

FRAME_SECONDS = 0.12
MAX_SIDE = 1920


def back_and_forth(frames: list[np.ndarray]) -> list[np.ndarray]:
    """a b c d -> a b c d c b: loops without showing an end twice."""
    return frames + frames[-2:0:-1]


def fit_for_video(frame: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Scale so the longer side is at most `max_side` (area filter), then to even width and height."""
    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    new_w, new_h = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
    if (new_w, new_h) == (width, height):
        return frame
    return cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)


def write_sweep(path: Path, frames: list[np.ndarray]) -> Path:
    """Write frames (RGB uint8, equal sizes) played back and forth, as .gif or .mp4 by the suffix."""
    sequence = [fit_for_video(frame) for frame in back_and_forth(frames)]
    if Path(path).suffix == ".gif":
        return _write_gif(Path(path), sequence)
    return _write_mp4(Path(path), sequence)


def _write_gif(path: Path, sequence: list[np.ndarray]) -> Path:
    from PIL import Image

    pictures = [Image.fromarray(frame) for frame in sequence]

    def write(handle) -> None:
        pictures[0].save(handle, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=int(FRAME_SECONDS * 1000), loop=0)

    return atomic.write_with(path, write)


def _write_mp4(path: Path, sequence: list[np.ndarray]) -> Path:
    def verify(tmp: Path) -> None:
        """Count the frames that decode: a full disk or a killed encoder leaves fewer."""
        count = len(read_video_frames(tmp))
        if count != len(sequence):
            raise OSError(f"the video holds {count} of its {len(sequence)} frames (incomplete write)")

    return atomic.write_by_name(path, lambda tmp: encode_h264(tmp, sequence), verify)


def encode_h264(path: Path, sequence: list[np.ndarray]) -> None:
    """Encode RGB frames (even sizes) as H.264 High, yuv420p, crf 18, into an MP4 with the index first."""
    import av

    height, width = sequence[0].shape[:2]
    rate = Fraction(1, 1) / Fraction(FRAME_SECONDS).limit_denominator(1000)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium", "profile": "high"}
        for frame in sequence:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video_frames(path: Path) -> list[np.ndarray]:
    """Decode every frame as RGB uint8 (for checks and tests)."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def video_codec(path: Path) -> str:
    """The codec name of the first video stream, e.g. 'h264'."""
    import av

    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.name
