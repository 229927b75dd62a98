"""Project search: by name (normalized; exact, prefix, substring) and by summary/keywords.

The searchable rows are derived from the catalog once per catalog generation; a query is
then one pass over plain lowercase strings (a few milliseconds for 20,000 projects), ranked
by where the words matched. No Flask here: ``web/ui.py`` serves it as HTML and JSON.

Results can be narrowed by a trove classifier (a whole classifier or a group of them:
``Framework :: Django`` also matches ``Framework :: Django :: 5.0``) and by a Python version
the project's ``Requires-Python`` admits; ``highlight_segments`` splits a summary around the
query words so the page can mark them (issue 12).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .catalog import Catalog, CatalogSnapshot, ProjectRecord

__all__ = ["SearchIndex", "SearchHit", "SearchResult", "SearchFilters", "search", "normalize_query",
           "highlight_segments", "python_admits"]

MAX_QUERY = 200


@dataclass(frozen=True)
class SearchHit:
    record: ProjectRecord
    score: float

    def to_json(self) -> dict:
        r = self.record
        return {"name": r.name, "display_name": r.display_name, "version": r.latest,
                "summary": r.summary, "score": round(self.score, 2)}


@dataclass(frozen=True)
class SearchResult:
    query: str
    total: int
    hits: tuple[SearchHit, ...]


def normalize_query(query: str) -> tuple[str, str, tuple[str, ...]]:
    """(normalized name form, compact form without separators, lowercase words)."""
    text = " ".join(query.strip().lower().split())[:MAX_QUERY]
    words = tuple(dict.fromkeys(w for w in text.replace(",", " ").split() if w))
    name = canonicalize_name(text.replace(" ", "-")) if text else ""
    return name, _compact(name), words


def _compact(name: str) -> str:
    return name.replace("-", "")


@dataclass(frozen=True)
class SearchFilters:
    """Narrowing on top of the words: a classifier (or group) and a Python version."""

    classifier: str = ""
    python: str = ""  # "3.11": Requires-Python must admit it (no Requires-Python admits all)

    def __bool__(self) -> bool:
        return bool(self.classifier or self.python)

    def admits(self, rec: ProjectRecord) -> bool:
        if self.classifier and not any(c == self.classifier or c.startswith(self.classifier + " :: ")
                                       for c in rec.classifiers):
            return False
        return not self.python or python_admits(rec.requires_python, self.python)


@lru_cache(maxsize=4096)
def python_admits(requires_python: str | None, python: str) -> bool:
    """Whether ``Requires-Python`` (PEP 345 specifiers) admits ``python``; unparseable: yes, as pip."""
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(Version(python), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True


def highlight_segments(text: str, words: Sequence[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, matched) around case-insensitive occurrences of ``words``."""
    words = [w for w in words if w]
    if not text or not words:
        return [(text, False)] if text else []
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], False))
        out.append((m.group(0), True))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out


class SearchIndex:
    """Rows of lowercase strings, sorted by name, built from a catalog snapshot."""

    def __init__(self, snapshot: CatalogSnapshot) -> None:
        rows = []
        for name in sorted(snapshot.records):
            rec = snapshot.records[name]
            rows.append((name, _compact(name), rec.summary.lower(), rec.keywords.lower(), rec))
        self.rows = rows

    def search(self, query: str, limit: int = 20, offset: int = 0,
               filters: SearchFilters = SearchFilters()) -> SearchResult:
        name_q, compact_q, words = normalize_query(query)
        if not words and not filters:
            return SearchResult(query, 0, ())
        scored: list[tuple[float, str, ProjectRecord]] = []
        for name, compact, summary, keywords, rec in self.rows:
            if filters and not filters.admits(rec):
                continue
            score = self._score(name_q, compact_q, words, name, compact, summary, keywords) if words else 1.0
            if score:
                scored.append((score, name, rec))
        scored.sort(key=lambda item: (-item[0], item[1]))
        page = scored[offset:offset + limit]
        return SearchResult(query, len(scored), tuple(SearchHit(rec, score) for score, _, rec in page))

    @staticmethod
    def _score(name_q: str, compact_q: str, words: Sequence[str], name: str, compact: str,
               summary: str, keywords: str) -> float:
        """Ranking: exact name > name prefix > name substring > every word somewhere."""
        score = 0.0
        if name_q and name == name_q:
            score = 1000.0
        elif name_q and name.startswith(name_q):
            score = 600.0 - min(len(name) - len(name_q), 100)
        elif name_q and name_q in name:
            score = 400.0 - min(len(name) - len(name_q), 100)
        elif compact_q and compact_q in compact:
            score = 300.0 - min(len(compact) - len(compact_q), 100)
        words_score = 0.0
        for word in words:
            if word in name:
                words_score += 30
            elif word in keywords:
                words_score += 20
            elif word in summary:
                words_score += 10
            else:
                return score  # every word must match somewhere for a text hit
        return score + words_score


def search(catalog: Catalog, query: str, limit: int = 20, offset: int = 0,
           filters: SearchFilters = SearchFilters()) -> SearchResult:
    """Search the catalog; the row index is rebuilt only when the catalog changed."""
    index: SearchIndex = catalog.derived("search", SearchIndex)
    return index.search(query, limit, offset, filters)
