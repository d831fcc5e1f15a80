"""Output names that never collide: two inputs always get two outputs.

Inputs are named by their stem (`photo.jpg` -> `photo`). When stems clash (`a.jpg` and `a.png`, or two
`face.jpg` from different folders on stdin), the clashing ones keep their suffix (`a_jpg`, `a_png`),
and if that too is taken (`a_jpg.png` exists), a counter follows (`a_jpg-2`). The assignment depends
only on the ordered list of inputs, so a rerun over the same inputs gives the same names.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath
from typing import Sequence


def unique_stems(relatives: Sequence[PurePosixPath | str]) -> list[str]:
    """One distinct output stem (a relative posix path without suffix) per input path, in input order."""
    paths = [PurePosixPath(str(p)) for p in relatives]
    plain = [p.with_suffix("").as_posix() for p in paths]
    clashes = Counter(key.lower() for key in plain)
    taken = {key.lower() for key, count in zip(plain, (clashes[k.lower()] for k in plain)) if count == 1}
    names: list[str] = []
    for path, stem in zip(paths, plain):
        if clashes[stem.lower()] == 1:
            names.append(stem)
            continue
        base = path.with_name(path.name.replace(".", "_")).as_posix()
        candidate, counter = base, 1
        while candidate.lower() in taken:
            counter += 1
            candidate = f"{base}-{counter}"
        taken.add(candidate.lower())
        names.append(candidate)
    return names
