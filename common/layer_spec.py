"""Parse layer selections like `all`, `0-1`, `2-5`, `6-`, `0,3,5` (used by factorize and edit)."""

from __future__ import annotations

from common.errors import UserError


def parse_layer_spec(spec: str, num_layers: int) -> list[int]:
    """Sorted, de-duplicated layer indices in [0, num_layers); ranges are inclusive, `6-` runs to the end."""
    text = spec.strip().lower().replace(" ", "")
    if text in ("all", "*", ""):
        return list(range(num_layers))
    selected: set[int] = set()
    for part in text.split(","):
        if not part:
            continue
        try:
            if "-" in part:
                start_text, end_text = part.split("-", 1)
                start = int(start_text) if start_text else 0
                end = int(end_text) if end_text else num_layers - 1
            else:
                start = end = int(part)
        except ValueError:
            raise UserError(f"--layers {spec!r}: {part!r} is not an index or range; use e.g. all, 0-1, 6-, 0,3,5") from None
        if start < 0 or end >= num_layers or start >= num_layers:
            raise UserError(f"--layers {spec!r}: {part!r} is outside 0..{num_layers - 1} for this generator")
        if start > end:
            raise UserError(f"--layers {spec!r}: range {part!r} runs backwards")
        selected.update(range(start, end + 1))
    if not selected:
        raise UserError(f"--layers {spec!r}: selects no layer")
    return sorted(selected)


def format_layer_spec(layers: list[int]) -> str:
    """Compact inverse of parse_layer_spec: [0,1,2,5] -> '0-2,5'."""
    parts, start = [], None
    for i, layer in enumerate(layers):
        if start is None:
            start = layer
        if i + 1 == len(layers) or layers[i + 1] != layer + 1:
            parts.append(str(start) if start == layer else f"{start}-{layer}")
            start = None
    return ",".join(parts)
