"""Dependency analysis: what a release needs, who needs a project, what nobody here serves.

Answers the question a private index raises: will ``pip install --index-url <this index>``
(no fallback to a public index) find every dependency? ``Requires-Dist`` values are parsed
with ``packaging.requirements``; the reverse graph comes from the catalog's per-project
table (latest release of each project), rebuilt once per catalog generation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Container, Iterable

from packaging.utils import canonicalize_name

from .catalog import Catalog, CatalogSnapshot, marker_extras, parse_requirement

__all__ = ["Dependency", "Dependent", "MissingDependency", "DependencyGraph", "analyse_requirements",
           "dependency_graph"]


@dataclass(frozen=True)
class Dependency:
    """One ``Requires-Dist`` line, parsed."""

    requirement: str  # as written in the metadata
    name: str | None  # normalized; None when the line does not parse
    display_name: str
    specifier: str
    extras: tuple[str, ...]  # extras requested of the dependency: name[extra]
    marker: str | None
    for_extras: tuple[str, ...]  # extras of the dependent that pull this in
    served: bool

    @property
    def optional(self) -> bool:
        return bool(self.for_extras)

    def to_json(self) -> dict:
        return {
            "requirement": self.requirement,
            "name": self.name,
            "specifier": self.specifier,
            "extras": list(self.extras),
            "marker": self.marker,
            "for_extras": list(self.for_extras),
            "optional": self.optional,
            "served": self.served,
            "valid": self.name is not None,
        }


@dataclass(frozen=True)
class Dependent:
    """A project whose latest release requires the project in question."""

    name: str
    version: str | None
    optional: bool


@dataclass(frozen=True)
class MissingDependency:
    """A dependency no project here serves, with the projects that need it."""

    name: str
    required_by: tuple[str, ...]
    only_optional: bool  # every use is behind an extra: a plain install still works


def analyse_requirements(requires_dist: Iterable[str], served: Container[str]) -> list[Dependency]:
    """Parse ``Requires-Dist`` lines and mark which names this index serves."""
    out = []
    for text in requires_dist:
        req = parse_requirement(text)
        if req is None:
            out.append(Dependency(text, None, text, "", (), None, (), False))
            continue
        name = str(canonicalize_name(req.name))
        out.append(Dependency(
            requirement=text,
            name=name,
            display_name=req.name,
            specifier=str(req.specifier),
            extras=tuple(sorted(req.extras)),
            marker=str(req.marker) if req.marker else None,
            for_extras=marker_extras(req),
            served=name in served,
        ))
    out.sort(key=lambda d: (d.optional, d.name or ""))
    return out


class DependencyGraph:
    """The reverse dependency map of a catalog snapshot."""

    def __init__(self, snapshot: CatalogSnapshot) -> None:
        dependents: dict[str, dict[str, bool]] = {}
        for rec in snapshot.records.values():
            for dep, optional in rec.deps:
                if dep == rec.name:
                    continue
                seen = dependents.setdefault(dep, {})
                seen[rec.name] = seen.get(rec.name, True) and optional
        self.snapshot = snapshot
        self.dependents = dependents

    def used_by(self, project: str) -> list[Dependent]:
        records = self.snapshot.records
        found = self.dependents.get(project, {})
        return [
            Dependent(name, records[name].latest if name in records else None, optional)
            for name, optional in sorted(found.items(), key=lambda kv: (kv[1], kv[0]))
        ]

    def missing(self, served: Container[str]) -> list[MissingDependency]:
        """Dependencies nobody here serves, most needed first."""
        out = [
            MissingDependency(dep, tuple(sorted(users)), all(users.values()))
            for dep, users in self.dependents.items()
            if dep not in served
        ]
        out.sort(key=lambda m: (m.only_optional, -len(m.required_by), m.name))
        return out


def dependency_graph(catalog: Catalog) -> DependencyGraph:
    return catalog.derived("dependency-graph", DependencyGraph)
