"""``manage_repo.py report`` (issue 6): what it prints matches the database and the tree."""
from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import sys
from datetime import date, timedelta

import pytest

from conftest import ROOT, run
from distbuilder import make_sdist, make_wheel

from pypi_repo.downloads import DownloadRecorder, database

pytestmark = pytest.mark.xdist_group("observability")

TODAY = date.today()
DAYS = [(TODAY - timedelta(days=n)).isoformat() for n in (40, 3, 1, 0)]


@pytest.fixture
def counted(repo_dirs):
    """A tree of three projects (one yanked file, one never downloaded) and counts on four days."""
    pk = repo_dirs["packages"]
    a1 = make_wheel(pk / "alpha", "alpha", "1.0")
    a2 = make_sdist(pk / "alpha", "alpha", "1.0")
    b1 = make_wheel(pk / "beta", "beta", "0.1")
    (b1.parent / (b1.name + ".yanked")).write_text("broken build")
    make_wheel(pk / "gamma", "gamma", "3.0")
    plan = [  # (day, project, filename, client, times)
        (DAYS[0], "alpha", a1.name, "pip", 4),
        (DAYS[1], "alpha", a1.name, "pip", 3),
        (DAYS[1], "alpha", a2.name, "uv", 2),
        (DAYS[2], "beta", b1.name, "browser", 1),
        (DAYS[3], "alpha", a1.name, "poetry", 5),
        (DAYS[3], "beta", b1.name, "pip", 2),
    ]
    db = database(repo_dirs["data"] / "pypi_repo.sqlite3")
    for day, project, filename, client, times in plan:
        recorder = DownloadRecorder(db, 3600, clock=lambda day=day: day)
        for _ in range(times):
            recorder.record(project, filename, client)
        recorder.flush()
    return {"a1": a1.name, "a2": a2.name, "b1": b1.name}


def _report(repo_dirs, *args: str) -> str:
    return run([sys.executable, str(ROOT / "manage_repo.py"), "--packages-dir", str(repo_dirs["packages"]),
                "--data-dir", str(repo_dirs["data"]), "--logs-dir", str(repo_dirs["logs"]), "report", *args],
               timeout=60).stdout


def _db(repo_dirs, sql: str, *params):
    with sqlite3.connect(repo_dirs["data"] / "pypi_repo.sqlite3") as conn:
        return conn.execute(sql, params).fetchall()


def test_json_report_matches_the_database(repo_dirs, counted):
    since = DAYS[1]
    report = json.loads(_report(repo_dirs, "--since", since, "--format", "json"))
    per_project = dict(_db(repo_dirs, "SELECT project, SUM(count) FROM download_counts WHERE day >= ? "
                                      "GROUP BY project", since))
    assert {p["name"]: p["downloads"] for p in report["per_project"]} == per_project == {"alpha": 10, "beta": 3}
    assert report["per_project"][0] == {"name": "alpha", "downloads": 10, "all_time": 14}
    assert report["downloads"] == 13
    per_day = {d["day"]: d["downloads"] for d in report["per_day"]}
    assert len(per_day) == 4 and per_day == {DAYS[1]: 5, DAYS[2]: 1, (TODAY - timedelta(days=2)).isoformat(): 0,
                                             DAYS[3]: 7}
    assert report["top_files"][0] == {"project": "alpha", "filename": counted["a1"], "downloads": 8}
    assert report["clients"] == {"poetry": 5, "pip": 5, "uv": 2, "browser": 1, "twine": 0, "other": 0}
    assert report["yanked"] == [{"project": "beta", "filename": counted["b1"], "reason": "broken build"}]
    assert report["unused_projects"] == ["gamma"]
    sizes = sum(p.stat().st_size for p in repo_dirs["packages"].rglob("*") if p.suffix in (".whl", ".gz"))
    assert report["storage"]["total_bytes"] == sizes and report["storage"]["total_files"] == 4
    assert report["storage"]["per_day"][-1]["total_bytes"] == sizes


def test_default_period_is_thirty_days(repo_dirs, counted):
    report = json.loads(_report(repo_dirs, "--format", "json"))
    assert report["since"] == (TODAY - timedelta(days=29)).isoformat()
    assert report["downloads"] == 13  # the day 40 days ago is outside


def test_csv_rows_are_the_database_rows(repo_dirs, counted):
    rows = list(csv.DictReader(io.StringIO(_report(repo_dirs, "--since", DAYS[0], "--format", "csv"))))
    got = sorted((r["day"], r["project"], r["filename"], r["client"], int(r["downloads"])) for r in rows)
    assert got == sorted(_db(repo_dirs, "SELECT day, project, filename, client, count FROM download_counts"))


def test_html_report_is_one_self_contained_file(repo_dirs, counted, tmp_path):
    out = tmp_path / "report.html"
    assert _report(repo_dirs, "--since", DAYS[1], "--format", "html", "-o", str(out)) == ""
    html = out.read_text()
    assert html.count("<svg") >= 4
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert re.search(r"<td>alpha</td><td class=\"n\">10</td><td class=\"n\">14</td>", html)
    assert "broken build" in html


def test_text_report_and_bad_dates(repo_dirs, counted):
    text = _report(repo_dirs, "--since", DAYS[1])
    assert "Downloads: 13" in text and "gamma" in text
    bad = run([sys.executable, str(ROOT / "manage_repo.py"), "--data-dir", str(repo_dirs["data"]),
               "report", "--since", "yesterday"], check=False, timeout=60)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
