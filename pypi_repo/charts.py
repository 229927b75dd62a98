"""Charts for the stats page, as plain geometry for inline SVG (no chart library, no CDN).

``upload_history`` turns the catalog's per-project day buckets (file mtimes) into
cumulative files and bytes over time; ``line_chart`` scales a series into an SVG path
with axis ticks that a template draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from .catalog import DAY_S, CatalogSnapshot

__all__ = ["upload_history", "line_chart", "LineChart", "human_bytes"]


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def upload_history(snapshot: CatalogSnapshot) -> list[tuple[int, int, int]]:
    """(day since epoch, cumulative files, cumulative bytes), one point per day with uploads."""
    per_day: dict[int, list[int]] = {}
    for rec in snapshot.records.values():
        for day, files, size in rec.daily:
            bucket = per_day.setdefault(day, [0, 0])
            bucket[0] += files
            bucket[1] += size
    out: list[tuple[int, int, int]] = []
    files_total = bytes_total = 0
    for day in sorted(per_day):
        files_total += per_day[day][0]
        bytes_total += per_day[day][1]
        out.append((day, files_total, bytes_total))
    return out


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    line: str  # SVG path "d" of the line
    area: str  # the same, closed to the x axis
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]
    last_label: str
    pad: int = 62  # room left of the plot for the y labels


def _day_label(day: float) -> str:
    return datetime.fromtimestamp(day * DAY_S, tz=timezone.utc).strftime("%Y-%m-%d")


def line_chart(points: Sequence[tuple[float, float]], y_format: Callable[[float], str] = str,
               width: int = 480, height: int = 200, pad: int = 86) -> LineChart | None:
    """Scale (day, value) points into the chart box; a step line, since totals jump at uploads."""
    if not points:
        return None
    pts = list(points)
    if pts[-1][0] - pts[0][0] < 7:  # too short a history to read: show the last week
        pts.insert(0, (pts[-1][0] - 7, 0))
    x0, x1 = pts[0][0], pts[-1][0]
    y1 = max(v for _, v in pts) or 1
    inner_w, inner_h = width - pad - 12, height - 66  # 20 above the plot, 46 below it for the dates

    def sx(x: float) -> float:
        return round(pad + (x - x0) / ((x1 - x0) or 1) * inner_w, 1)

    def sy(y: float) -> float:
        return round(20 + inner_h - y / y1 * inner_h, 1)

    segs = [f"M{sx(pts[0][0])},{sy(pts[0][1])}"]
    for x, y in pts[1:]:
        segs.append(f"H{sx(x)}V{sy(y)}")
    line = "".join(segs)
    area = f"{line}V{sy(0)}H{sx(x0)}Z"
    x_ticks = tuple(dict((_day_label(x0 + (x1 - x0) * i / 3), sx(x0 + (x1 - x0) * i / 3)) for i in range(4)).items())
    x_ticks = tuple((x, label) for label, x in x_ticks)
    y_ticks = tuple((sy(y1 * i / 4), y_format(y1 * i / 4)) for i in range(5))
    return LineChart(width, height, line, area, x_ticks, y_ticks, y_format(pts[-1][1]), pad)
