"""Simple Repository API rendering: content negotiation (PEP 691) and the two formats.

HTML follows PEP 503 (+ PEP 592 yank, PEP 629 meta, PEP 658/714 metadata attributes);
JSON follows PEP 691 (+ PEP 700). Both render from the same :mod:`~pypi_repo.model`
objects, and both are cached as bytes by :mod:`~pypi_repo.index`, so rendering is never
on the hot path.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import jinja2
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from .model import API_VERSION, ProjectDetail, ProjectList

__all__ = [
    "JSON_V1",
    "HTML_V1",
    "TEXT_HTML",
    "NotAcceptable",
    "choose_content_type",
    "is_json",
    "render_project_detail",
    "render_project_list",
]

TEXT_HTML = "text/html"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_LATEST = "application/vnd.pypi.simple.latest+html"
JSON_LATEST = "application/vnd.pypi.simple.latest+json"

#: Offered in this order; on equal quality the earlier one wins, so "*/*" gets HTML.
_OFFERS = (TEXT_HTML, HTML_V1, JSON_V1, HTML_LATEST, JSON_LATEST)
#: PEP 691: "latest" is an alias; the response names the concrete version.
_CONCRETE = {HTML_LATEST: HTML_V1, JSON_LATEST: JSON_V1}
_FORMAT_ALIASES = {"json": JSON_V1, "html": TEXT_HTML}

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "simple"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


class NotAcceptable(ValueError):
    """No representation matches what the client accepts (HTTP 406)."""


@lru_cache(maxsize=512)
def choose_content_type(accept: str | None, format_param: str | None = None) -> str:
    """Pick the response content type from ``?format=`` or the ``Accept`` header.

    Real q-value negotiation (pip and uv ask for JSON first, HTML at a lower q). A missing
    or unparseable Accept header gets HTML, as PEP 691 recommends for old clients.
    """
    if format_param:
        wanted = _FORMAT_ALIASES.get(format_param.strip().lower(), format_param.strip())
        if wanted not in _OFFERS:
            raise NotAcceptable(f"unknown format {format_param[:100]!r}")
        return _CONCRETE.get(wanted, wanted)
    if not accept or not accept.strip():
        return TEXT_HTML
    parsed = parse_accept_header(accept, MIMEAccept)
    if not any("/" in value for value, _q in parsed):
        return TEXT_HTML
    best = parsed.best_match(_OFFERS)
    if best is None:
        raise NotAcceptable("none of the offered types is acceptable: " + ", ".join(_OFFERS[:3]))
    return _CONCRETE.get(best, best)


def is_json(content_type: str) -> bool:
    return content_type == JSON_V1


def file_url(prefix: str, path: str) -> str:
    return f"{prefix}/packages/{quote(path, safe='/+!~*()')}"


def render_project_detail(detail: ProjectDetail, content_type: str, prefix: str = "") -> bytes:
    """Render one project page.

    PEP 714: the JSON form carries only ``core-metadata``. The old ``dist-info-metadata``
    key makes pip 22.3 to 23.1 (Debian 12 ships 23.0.1) crash with "unhashable type:
    'dict'"; the HTML form may keep ``data-dist-info-metadata`` beside
    ``data-core-metadata`` (equal values), which every pip parses.
    """
    if is_json(content_type):
        files = []
        for f in detail.files:
            item: dict = {
                "filename": f.filename,
                "url": file_url(prefix, f.path),
                "hashes": {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "core-metadata": {"sha256": f.core_metadata_sha256} if f.core_metadata_sha256 else False,
                "yanked": (f.yanked or True) if f.yanked is not None else False,
                "size": f.size,
                "upload-time": f.upload_time,
            }
            files.append(item)
        doc = {
            "meta": {"api-version": API_VERSION},
            "name": detail.name,
            "versions": list(detail.versions),
            "files": files,
        }
        return json.dumps(doc, separators=(",", ":")).encode()
    html = _TEMPLATES.get_template("project.html").render(
        api_version=API_VERSION, detail=detail, prefix=prefix, file_url=file_url
    )
    return html.encode()


def render_project_list(listing: ProjectList, content_type: str, prefix: str = "") -> bytes:
    if is_json(content_type):
        doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in listing.projects]}
        return json.dumps(doc, separators=(",", ":")).encode()
    html = _TEMPLATES.get_template("index.html").render(
        api_version=API_VERSION, projects=listing.projects, prefix=prefix
    )
    return html.encode()
