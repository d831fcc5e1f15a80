"""Throughput without changing a byte: `align`, `edit` and paste-back on worker processes write what one
process writes; `run` streamed (photo by photo through every stage) writes what `run --no-stream`
writes; a streamed run killed at several points and rerun ends with the uninterrupted run's files; a
worker process that dies costs only its own item."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alignment.stage import AlignOptions, run_align
from common.process_pool import OrderedPool, WorkerDied, ordered_map
from tests.conftest import SHARED
from tests.pool_helpers import square_or_die, square_or_raise

REPO = Path(__file__).resolve().parents[1]
PORTRAITS = SHARED / "photos" / "face-recognition"
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")
RUN = ("--steps", "12", "--edit", "0=-2:2:3", "--edit", "2=1.5", "--device", "cpu")
MEDIA = (".png", ".jpg", ".npy")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("obama_small.jpg", "two_people.jpg", "biden.jpg"):
        shutil.copy(PORTRAITS / name, folder / name)
    shutil.copy(SHARED / "photos" / "dlib-faces" / "dogs.jpg", folder / "dogs.jpg")  # no face
    (folder / "broken.jpg").write_text("not a photo")
    return folder


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], capture_output=True, text=True, **kwargs)


def media(out: Path) -> dict[str, bytes]:
    """Every image and code under OUT, by relative path: what must be byte-identical."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in MEDIA and not p.name.startswith(".")}


def test_a_dead_worker_costs_its_own_item_and_the_others_finish_in_order():
    assert list(ordered_map(square_or_die, [(v, 99) for v in range(6)], 2)) == [0, 1, 4, 9, 16, 25]
    results = list(ordered_map(square_or_die, [(v, 3) for v in range(7)], 2))
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 4, 16, 25, 36]
    assert isinstance(results[3], WorkerDied) and "ended without an answer" in str(results[3])
    with OrderedPool(2) as pool, pytest.raises(ValueError, match="three is refused"):  # the function's own error: raised
        list(pool.map(square_or_raise, [(v,) for v in range(5)]))


def test_a_job_put_after_a_worker_died_is_redone_not_raised():
    """The pool breaks between two puts (the dead worker's future already failed): the next put must not
    raise BrokenProcessPool; both jobs come back through `take`, the killer as WorkerDied."""
    with OrderedPool(2) as pool:
        queue = pool.queue(square_or_die)
        queue.put((3, 3), tag="dies")
        deadline = time.time() + 60
        while not queue.pending[0][2].done() and time.time() < deadline:
            time.sleep(0.05)
        assert queue.pending[0][2].done(), "the killed worker was never noticed"
        queue.put((4, 3), tag="after")
        taken = list(queue.take(block=True))
    assert [tag for tag, _ in taken] == ["dies", "after"]
    assert isinstance(taken[0][1], WorkerDied) and taken[1][1] == 16


def test_align_on_two_workers_writes_what_one_writes(photos, tmp_path):
    outcomes = {}
    for workers in (1, 2):
        records, said = [], []
        out = tmp_path / f"w{workers}"
        summary = run_align(str(photos), out, AlignOptions(), records.append, said.append, workers=workers)
        failures = [{k: v for k, v in json.loads(line).items() if k != "time"}
                    for line in (out / "failures.jsonl").read_text().splitlines()]
        outcomes[workers] = (media(out), [json.dumps(r).replace(str(out.resolve()), "OUT") for r in records],
                             failures, (summary.crops, summary.no_face, summary.unreadable))
    assert outcomes[1] == outcomes[2]
    assert outcomes[1][3] == (4, 1, 1) and len(outcomes[1][0]) == 4


@pytest.fixture(scope="module")
def streamed(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("streamed") / "out"
    result = cli("run", photos, out, *RUN)
    assert result.returncode == 0, result.stderr
    assert "as soon as its photo is aligned" in result.stderr
    return out


def test_a_streamed_run_writes_what_the_stages_one_after_the_other_write(photos, streamed, tmp_path):
    result = cli("run", photos, tmp_path / "staged", *RUN, "--no-stream", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert media(tmp_path / "staged") == media(streamed)
    assert len([name for name in media(streamed) if name.startswith("photos/")]) == 3 * 4  # 3 photos x 4 edits
    report = (streamed / "index.html").read_text()
    assert "edits/two_people_1/grid.png" in report and "photos/two_people/photo_dir00_+2p00.jpg" in report


def test_edit_on_two_workers_writes_what_one_writes(streamed, tmp_path):
    directions = next((streamed / "directions").glob("*/directions.npz"))
    for workers in (1, 2):
        result = cli("edit", streamed / "codes", tmp_path / f"e{workers}", "-g", REPO / "assets" / "example-stylegan2-64.pt",
                     "-d", directions, "--edit", "1=-1,2", "--paste-back", "--animate", "gif", "--workers", workers,
                     "--device", "cpu")
        assert result.returncode == 0, result.stderr
    assert media(tmp_path / "e1") == media(tmp_path / "e2") and len(media(tmp_path / "e1")) > 10
    assert {p.name for p in (tmp_path / "e2").rglob("*.gif")} == {p.name for p in (tmp_path / "e1").rglob("*.gif")} != set()


def test_a_streamed_run_killed_at_any_point_resumes_to_the_same_files(photos, streamed, tmp_path):
    """Killed when the first code is written, when the first face's edits are done, when the first photo is
    pasted back: each rerun picks up where the last one stopped, and the last ends with the same bytes."""
    out = tmp_path / "out"
    moments = [lambda: any((out / "codes").glob("*.npy")),
               lambda: any((out / "edits").glob("*/.edit.json")),
               lambda: any((out / "photos").glob("*/.paste.json"))]
    interrupted = []
    for moment in moments:
        process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "run", str(photos), str(out), *RUN],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and not moment():
            time.sleep(0.02)
        workers = children_of(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        interrupted.append(media(out) != media(streamed))
        time.sleep(0.5)
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)], \
            "worker processes outlived their killed driver"
    assert interrupted[0], "the first run finished before it could be killed"
    result = cli("run", photos, out, *RUN)
    assert result.returncode == 0, result.stderr
    assert media(out) == media(streamed)


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return children


def _state(pid: int) -> str:
    try:
        state = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "zombie"
    return "zombie" if state in ("Z", "X") else state
