"""Project search: by name (normalized; exact, prefix, substring) and by summary/keywords.

The searchable rows are derived from the catalog once per catalog generation; a query is
then one pass over plain lowercase strings (a few milliseconds for 20,000 projects), ranked
by where the words matched. No Flask here: ``web/ui.py`` serves it as HTML and JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from packaging.utils import canonicalize_name

from .catalog import Catalog, CatalogSnapshot, ProjectRecord

__all__ = ["SearchIndex", "SearchHit", "SearchResult", "search", "normalize_query"]

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


class SearchIndex:
    """Rows of lowercase strings, sorted by name, built from a catalog snapshot."""

    def __init__(self, snapshot: CatalogSnapshot) -> None:
        rows = []
        for name in sorted(snapshot.records):
            rec = snapshot.records[name]
            rows.append((name, _compact(name), rec.summary.lower(), rec.keywords.lower(), rec))
        self.rows = rows

    def search(self, query: str, limit: int = 20, offset: int = 0) -> SearchResult:
        name_q, compact_q, words = normalize_query(query)
        if not words:
            return SearchResult(query, 0, ())
        scored: list[tuple[float, str, ProjectRecord]] = []
        for name, compact, summary, keywords, rec in self.rows:
            score = self._score(name_q, compact_q, words, name, compact, summary, keywords)
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


def search(catalog: Catalog, query: str, limit: int = 20, offset: int = 0) -> SearchResult:
    """Search the catalog; the row index is rebuilt only when the catalog changed."""
    index: SearchIndex = catalog.derived("search", SearchIndex)
    return index.search(query, limit, offset)
