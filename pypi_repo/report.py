"""``manage_repo.py report``: what is used, by whom, and how the store grows (issue 6).

One :func:`build_report` gathers the facts (download counts from the database, files from
a stat walk of the tree); the formats only render that dict: ``text`` for a terminal,
``json`` for scripts, ``csv`` (one row per day, project, file and client) for
spreadsheets, and ``html``: one self-contained file (inline CSS and SVG charts, no
scripts, nothing fetched) to mail or archive.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

from jinja2 import Environment, PackageLoader, select_autoescape

from .backends import SqlDatabase
from .config import Settings
from .downloads import CLIENT_KINDS, database
from .storage import PackageStore

__all__ = ["build_report", "register", "render_report", "run_report", "FORMATS"]

FORMATS = ("text", "json", "csv", "html")
DEFAULT_DAYS = 30


# ---------------------------------------------------------------------------- facts
def _download_rows(db: SqlDatabase, since: date) -> list[tuple[str, str, str, str, int]]:
    rows = database(db).query("SELECT day, project, filename, client, count FROM download_counts "
                              "WHERE day >= ? ORDER BY day, project, filename, client", (since.isoformat(),))
    return [tuple(r) for r in rows]


def _all_time_by_project(db: SqlDatabase) -> dict[str, int]:
    return {p: int(n) for p, n in database(db).query(
        "SELECT project, SUM(count) FROM download_counts GROUP BY project")}


def _days(since: date, until: date) -> list[str]:
    return [(since + timedelta(days=i)).isoformat() for i in range((until - since).days + 1)]


def _storage(store: PackageStore, since: date, until: date) -> tuple[dict[str, Any], list[dict], list[str]]:
    """Storage growth from file mtimes (when each file arrived), the yanked files, the projects."""
    added: dict[str, list[int]] = {}
    yanked: list[dict[str, Any]] = []
    total_files = total_bytes = 0
    projects: list[str] = []
    for project, entries in store.iter_all():
        projects.append(project)
        for entry in entries:
            day = datetime.fromtimestamp(entry.mtime_ns / 1e9, timezone.utc).date().isoformat()
            bucket = added.setdefault(day, [0, 0])
            bucket[0] += 1
            bucket[1] += entry.size
            total_files += 1
            total_bytes += entry.size
            if entry.yanked is not None:
                yanked.append({"project": project, "filename": entry.filename, "reason": entry.yanked})
    first = since.isoformat()
    files_before = sum(v[0] for d, v in added.items() if d < first)
    bytes_before = sum(v[1] for d, v in added.items() if d < first)
    per_day = []
    running_files, running_bytes = files_before, bytes_before
    for day in _days(since, until):
        files, size = added.get(day, (0, 0))
        running_files += files
        running_bytes += size
        per_day.append({"day": day, "files_added": files, "bytes_added": size,
                        "total_files": running_files, "total_bytes": running_bytes})
    storage = {
        "total_files": total_files,
        "total_bytes": total_bytes,
        "files_added": total_files - files_before,
        "bytes_added": total_bytes - bytes_before,
        "per_day": per_day,
    }
    return storage, sorted(yanked, key=lambda y: (y["project"], y["filename"])), sorted(projects)


def build_report(settings: Settings, since: date | None = None, until: date | None = None,
                 top: int = 20, db: SqlDatabase | None = None) -> dict[str, Any]:
    """Everything the report shows, as plain data (the ``json`` format prints exactly this);
    ``db``: the shared database the CLI opened (default: ``database_url`` of ``settings``)."""
    if db is None:
        db = database(settings)
    until = until or datetime.now(timezone.utc).date()
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    rows = [r for r in _download_rows(db, since) if r[0] <= until.isoformat()]
    per_day: Counter[str] = Counter()
    per_project: Counter[str] = Counter()
    per_file: Counter[tuple[str, str]] = Counter()
    clients: Counter[str] = Counter({kind: 0 for kind in CLIENT_KINDS})
    for day, project, filename, client, count in rows:
        per_day[day] += count
        per_project[project] += count
        per_file[(project, filename)] += count
        clients[client] += count
    all_time = _all_time_by_project(db)
    storage, yanked, projects = _storage(PackageStore(settings.packages_dir), since, until)
    return {
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "downloads": sum(per_project.values()),
        "per_day": [{"day": d, "downloads": per_day.get(d, 0)} for d in _days(since, until)],
        "per_project": [{"name": p, "downloads": n, "all_time": all_time.get(p, n)}
                        for p, n in sorted(per_project.items(), key=lambda kv: (-kv[1], kv[0]))],
        "top_files": [{"project": p, "filename": f, "downloads": n}
                      for (p, f), n in sorted(per_file.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        "clients": dict(sorted(clients.items(), key=lambda kv: (-kv[1], kv[0]))),
        "storage": storage,
        "yanked": yanked,
        "unused_projects": [p for p in projects if per_project.get(p, 0) == 0],
        "rows": [{"day": d, "project": p, "filename": f, "client": c, "downloads": n} for d, p, f, c, n in rows],
    }


# ---------------------------------------------------------------------------- rendering
def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _text(report: dict[str, Any]) -> str:
    out = [f"Download report {report['since']} .. {report['until']} (generated {report['generated_at']})",
           f"Downloads: {report['downloads']}", "", "Per project (period / all time):"]
    out += [f"  {p['name']:<40} {p['downloads']:>8} {p['all_time']:>10}" for p in report["per_project"]] or ["  none"]
    out += ["", "Per day:"] + [f"  {d['day']}  {d['downloads']}" for d in report["per_day"] if d["downloads"]]
    out += ["", "Top files:"] + [f"  {f['downloads']:>8}  {f['project']}/{f['filename']}" for f in report["top_files"]]
    out += ["", "Clients:"] + [f"  {kind:<8} {n}" for kind, n in report["clients"].items()]
    s = report["storage"]
    out += ["", f"Storage: {s['total_files']} files, {_human_bytes(s['total_bytes'])}; "
                f"added in period: {s['files_added']} files, {_human_bytes(s['bytes_added'])}"]
    out += ["", f"Yanked files ({len(report['yanked'])}):"]
    out += [f"  {y['project']}/{y['filename']}" + (f"  ({y['reason']})" if y["reason"] else "") for y in report["yanked"]]
    out += ["", f"Projects without downloads in the period ({len(report['unused_projects'])}):"]
    out += [f"  {name}" for name in report["unused_projects"]]
    return "\n".join(out) + "\n"


def _csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["day", "project", "filename", "client", "downloads"])
    for r in report["rows"]:
        writer.writerow([r["day"], r["project"], r["filename"], r["client"], r["downloads"]])
    return buf.getvalue()


def _bars(points: Sequence[tuple[str, float]], width: int = 720, height: int = 160) -> dict[str, Any]:
    """Geometry for an SVG bar chart: one bar per point, scaled to the largest value."""
    peak = max((v for _, v in points), default=0) or 1
    step = width / max(len(points), 1)
    bars = [{"x": round(i * step + step * 0.1, 1), "w": round(max(step * 0.8, 1), 1),
             "h": round(value / peak * height, 1), "y": round(height - value / peak * height, 1),
             "label": label, "value": value} for i, (label, value) in enumerate(points)]
    return {"width": width, "height": height, "bars": bars, "peak": peak,
            "first": points[0][0] if points else "", "last": points[-1][0] if points else ""}


def _line(points: Sequence[tuple[str, float]], width: int = 720, height: int = 160) -> dict[str, Any]:
    low = min((v for _, v in points), default=0)
    high = max((v for _, v in points), default=0)
    span = (high - low) or 1
    step = width / max(len(points) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - (v - low) / span * height:.1f}" for i, (_, v) in enumerate(points))
    return {"width": width, "height": height, "points": coords, "low": low, "high": high,
            "first": points[0][0] if points else "", "last": points[-1][0] if points else ""}


def _html(report: dict[str, Any]) -> str:
    env = Environment(loader=PackageLoader("pypi_repo", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["bytes"] = _human_bytes
    charts = {
        "per_day": _bars([(d["day"], d["downloads"]) for d in report["per_day"]]),
        "projects": _bars([(p["name"], p["downloads"]) for p in report["per_project"][:20]]),
        "clients": _bars([(k, n) for k, n in report["clients"].items()], width=360),
        "storage": _line([(d["day"], d["total_bytes"]) for d in report["storage"]["per_day"]]),
    }
    return env.get_template("report.html").render(r=report, charts=charts)


def render_report(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        return _html(report)
    return _text(report)


# ---------------------------------------------------------------------------- command
def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_date, help=f"first day, YYYY-MM-DD (default: {DEFAULT_DAYS} days ago)")
    parser.add_argument("--until", type=_date, help="last day, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    parser.add_argument("--top", type=int, default=20, help="how many top files to list (default 20)")
    parser.add_argument("-o", "--output", type=Path, help="write to this file instead of standard output")


def run_report(args: argparse.Namespace, ctx: Any) -> int:
    """Handler of ``manage_repo.py report`` (``ctx`` is the CLI context: its ``settings``)."""
    if args.since and args.until and args.since > args.until:
        print("manage_repo.py report: --since is after --until", file=sys.stderr)
        return 2
    text = render_report(build_report(ctx.settings, args.since, args.until, args.top, db=ctx.db), args.format)
    if args.output:
        tmp = args.output.with_name(f".{args.output.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.output)
    else:
        sys.stdout.write(text)
    return 0


def register(registry: Any) -> None:
    """``manage_repo.py report``: hooked in through ``cli.EXTENSION_MODULES``."""
    registry.register_command(
        "report", "download and storage report (text, json, csv or html)", configure_parser, run_report)
