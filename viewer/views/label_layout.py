"""Where the measurement labels go on a view: beside their shapes, inside the view, never over
one another. Pure geometry in screen pixels, no Qt."""

from __future__ import annotations

__all__ = ["Box", "place_labels"]

Box = tuple[float, float, float, float]  # x, y, width, height


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _clamp(x: float, y: float, w: float, h: float, width: float, height: float) -> Box:
    return (min(max(x, 0.0), max(width - w, 0.0)), min(max(y, 0.0), max(height - h, 0.0)), w, h)


def place_labels(wanted: list[Box], width: float, height: float, gap: float = 2.0) -> list[Box]:
    """Each wanted box moved as little as it must: first inside the view, then off the boxes
    placed before it (tried below, above, right and left of where it wanted to be, stepping by
    its own size). Where the view is too full for that, the least-overlapping spot is taken."""
    placed: list[Box] = []
    for x, y, w, h in wanted:
        base = _clamp(x, y, w, h, width, height)
        candidates = [base]
        for step in range(1, 12):
            dy, dx = step * (h + gap), step * (w + gap) / 2
            for cx, cy in (
                (base[0], base[1] + dy),
                (base[0], base[1] - dy),
                (base[0] + dx, base[1]),
                (base[0] - dx, base[1]),
            ):
                candidates.append(_clamp(cx, cy, w, h, width, height))
        best = min(
            candidates, key=lambda c: (sum(_overlaps(c, p) for p in placed), abs(c[0] - base[0]) + abs(c[1] - base[1]))
        )
        placed.append(best)
    return placed
