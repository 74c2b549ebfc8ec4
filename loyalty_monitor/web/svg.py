"""Small inline SVG charts for server-rendered pages: numbers in, markup out (no text from data)."""

from __future__ import annotations

from typing import Sequence

from markupsafe import Markup


def sparkline(values: Sequence[float], width: int = 120, height: int = 28, low: float = 0.0,
              high: float = 100.0, label: str = "") -> Markup:
    """A polyline of ``values`` on a fixed ``[low, high]`` scale, with the last point marked."""
    if not values:
        return Markup(f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="no data"></svg>')
    span = (high - low) or 1.0
    step = (width - 4) / max(len(values) - 1, 1)
    points = [(2 + i * step, 2 + (height - 4) * (1 - (min(max(float(v), low), high) - low) / span))
              for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    first, last = float(values[0]), float(values[-1])
    trend = "up" if last > first + 2 else "down" if last < first - 2 else "flat"
    aria = f"{label} {first:.0f} to {last:.0f}".strip()
    return Markup(
        f'<svg class="spark spark-{trend}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{Markup.escape(aria)}"><polyline fill="none" stroke-width="1.5" points="{path}"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2"/></svg>')


def matrix_position(rational: float | None, emotional: float | None, size: int = 120,
                    strong: float = 60.0) -> Markup:
    """The loyalty matrix: rational loyalty across, emotional up, the strong line, the customer as a dot."""
    if rational is None or emotional is None:
        return Markup("")
    scale = (size - 4) / 100.0
    x = 2 + min(max(float(rational), 0), 100) * scale
    y = size - 2 - min(max(float(emotional), 0), 100) * scale
    line = 2 + strong * scale
    return Markup(
        f'<svg class="matrix" width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img" '
        f'aria-label="rational {float(rational):.0f}, emotional {float(emotional):.0f}">'
        f'<rect x="1" y="1" width="{size - 2}" height="{size - 2}" fill="none" stroke="#bbb"/>'
        f'<line x1="{line:.1f}" y1="1" x2="{line:.1f}" y2="{size - 1}" stroke="#ddd"/>'
        f'<line x1="1" y1="{size - line:.1f}" x2="{size - 1}" y2="{size - line:.1f}" stroke="#ddd"/>'
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5"/></svg>')
