"""The human view of one release: metadata fields and the rendered README, cached.

Reading an archive and rendering a README costs milliseconds to tens of milliseconds; a
project page must cost less. So views are kept in a bounded in-memory LRU keyed by the
files' stat keys: a file replaced on disk gives a new key and a fresh view.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from email.utils import getaddresses
from urllib.parse import urlsplit

from packaging.utils import NormalizedName

from .catalog import release_metadata
from .descriptions import render_description
from .index import ProjectIndex
from .storage import FileEntry

__all__ = ["ReleaseView", "ReleaseViews", "safe_url"]


@dataclass(frozen=True)
class ReleaseView:
    """What a project page shows about one version (all values plain, HTML pre-sanitized)."""

    display_name: str
    version: str
    summary: str
    description_html: str
    license: str
    license_expression: str
    authors: tuple[tuple[str, str], ...]  # (name, email)
    maintainers: tuple[tuple[str, str], ...]
    urls: tuple[tuple[str, str], ...]  # (label, http(s) URL)
    keywords: tuple[str, ...]
    classifiers: tuple[str, ...]
    requires_python: str | None
    requires_dist: tuple[str, ...]
    provides_extra: tuple[str, ...]
    has_metadata: bool


def safe_url(url: str | None) -> str | None:
    """Only http(s) URLs become links; anything else (``javascript:``, ``data:``) is dropped."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _people(name: str | None, email: str | None) -> tuple[tuple[str, str], ...]:
    """(name, email) pairs from ``Author`` + ``Author-email``.

    ``Author: Will McGugan`` with ``Author-email: willmcgugan@gmail.com`` is one person, not
    two (issue 12, defect 14): bare addresses are paired with the names in order.
    """
    found = [(display.strip(), address.strip()) for display, address in getaddresses([email or ""])
             if address or display]
    names = [n.strip() for n in (name or "").split(",") if n.strip()]
    bare = [address for display, address in found if not display]
    if names and bare and len(bare) == len(found) and len(names) == len(bare):
        return tuple(zip(names, bare))
    names = [name.strip()] if name and name.strip() else []
    if len(names) == 1 and bare and len(bare) == len(found):
        return ((names[0], bare[0]),) + tuple((a, a) for a in bare[1:])
    people = [(display or address, address) for display, address in found]
    for n in reversed(names):
        if not any(p[0] == n for p in people):
            people.insert(0, (n, ""))
    return tuple(people)


def _urls(fields: dict) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    if safe_url(fields.get("home_page")):
        out.append(("Homepage", fields["home_page"].strip()))
    for label, url in (fields.get("project_urls") or {}).items():
        checked = safe_url(url)
        if checked:
            out.append((str(label)[:60], checked))
    if safe_url(fields.get("download_url")):
        out.append(("Download", fields["download_url"].strip()))
    return tuple(dict.fromkeys(out))


def build_view(index: ProjectIndex, project: str, version: str, entries: list[FileEntry]) -> ReleaseView:
    meta = release_metadata(index, project, entries)
    fields = meta.fields if meta else {}
    keywords = fields.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.replace(",", " ").split() if k.strip()]
    return ReleaseView(
        display_name=str(meta.name) if meta else project,
        version=version,
        summary=(meta.summary or "").strip() if meta else "",
        description_html=render_description(fields.get("description"), fields.get("description_content_type")),
        license=(fields.get("license") or "").strip(),
        license_expression=(fields.get("license_expression") or "").strip(),
        authors=_people(fields.get("author"), fields.get("author_email")),
        maintainers=_people(fields.get("maintainer"), fields.get("maintainer_email")),
        urls=_urls(fields),
        keywords=tuple(keywords),
        classifiers=tuple(fields.get("classifiers") or ()),
        requires_python=meta.requires_python if meta else None,
        requires_dist=tuple(meta.requires_dist) if meta else (),
        provides_extra=tuple(fields.get("provides_extra") or ()),
        has_metadata=meta is not None,
    )


class ReleaseViews:
    """Bounded LRU of :class:`ReleaseView`, keyed by the release files' stat keys."""

    def __init__(self, index: ProjectIndex, max_entries: int = 512) -> None:
        self.index = index
        self.max_entries = max_entries
        self._items: OrderedDict[tuple, ReleaseView] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, project: NormalizedName, version: str, entries: list[FileEntry]) -> ReleaseView:
        key = (project, version, tuple(sorted((e.filename, e.stat_key) for e in entries)))
        with self._lock:
            view = self._items.get(key)
            if view is not None:
                self._items.move_to_end(key)
                return view
        view = build_view(self.index, project, version, entries)
        with self._lock:
            self._items[key] = view
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return view
