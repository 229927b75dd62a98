"""Dependency analysis: what a release needs, who needs a project, what nobody here serves.

Answers the question a private index raises: will ``pip install --index-url <this index>``
(no fallback to a public index) find every dependency? ``Requires-Dist`` values are parsed
with ``packaging.requirements``; the reverse graph comes from the catalog's per-project
table (latest release of each project), rebuilt once per catalog generation.

A requirement with an environment marker (``sys_platform == "win32"``,
``python_version < "3.11"``) or behind an extra is not "required": it is needed only when
its marker holds. Markers are evaluated with ``packaging.markers`` for a stated, choosable
:class:`Environment` (issue 12, defect 2), by default the server's own.
"""
from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Container, Iterable, Mapping

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName, default_environment
from packaging.utils import canonicalize_name

from .catalog import Catalog, CatalogSnapshot, marker_extras, parse_requirement

__all__ = ["Dependency", "Dependent", "MissingDependency", "DependencyGraph", "Environment", "PLATFORMS",
           "PYTHON_VERSIONS", "analyse_requirements", "dependency_graph", "server_environment"]

PYTHON_VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
PLATFORMS: Mapping[str, Mapping[str, str]] = {  # the marker variables each platform implies
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"},
    "macos": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"},
    "windows": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
}
PLATFORM_LABELS = {"linux": "Linux", "macos": "macOS", "windows": "Windows"}


@dataclass(frozen=True)
class Environment:
    """The interpreter and platform markers are evaluated for (PEP 508 marker variables)."""

    python_version: str  # "3.11"
    platform: str  # a key of PLATFORMS

    @property
    def label(self) -> str:
        return f"Python {self.python_version} on {PLATFORM_LABELS.get(self.platform, self.platform)}"

    def markers(self) -> dict[str, str]:
        env = dict(default_environment())
        if env["python_version"] != self.python_version:
            env["python_full_version"] = self.python_version + ".0"
        env["python_version"] = self.python_version
        env.update(PLATFORMS.get(self.platform, {}))
        env["extra"] = ""
        return env

    @classmethod
    def parse(cls, python_version: str | None, platform: str | None) -> "Environment":
        """From request arguments; anything unknown falls back to the server's value."""
        server = server_environment()
        return cls(python_version if python_version in PYTHON_VERSIONS else server.python_version,
                   platform if platform in PLATFORMS else server.platform)


def server_environment() -> Environment:
    system = _platform.system()
    name = {"Windows": "windows", "Darwin": "macos"}.get(system, "linux")
    return Environment(".".join(_platform.python_version_tuple()[:2]), name)


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
    applies: bool = True  # installed in the chosen environment without extras
    applies_with_extra: bool = False  # installed there when one of ``for_extras`` is asked for

    @property
    def optional(self) -> bool:
        return bool(self.for_extras)

    @property
    def conditional(self) -> bool:
        """Needed only under a marker (an extra, a platform, a Python version)."""
        return self.marker is not None or self.name is None

    @property
    def breaks_install(self) -> bool:
        """pip in the chosen environment would need it, and this index does not serve it."""
        return self.applies and not self.served

    def to_json(self) -> dict:
        return {
            "requirement": self.requirement,
            "name": self.name,
            "specifier": self.specifier,
            "extras": list(self.extras),
            "marker": self.marker,
            "for_extras": list(self.for_extras),
            "optional": self.optional,
            "conditional": self.conditional,
            "applies": self.applies,
            "applies_with_extra": self.applies_with_extra,
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
    only_optional: bool  # every use is behind an extra or a marker: a plain install may still work


def _evaluate(req, env: Mapping[str, str], extras: Iterable[str]) -> tuple[bool, bool]:
    """(installed without extras, installed with one of ``extras``) in ``env``."""
    if req.marker is None:
        return True, True
    try:
        plain = req.marker.evaluate(dict(env, extra=""))
        with_extra = any(req.marker.evaluate(dict(env, extra=x)) for x in extras)
    except (UndefinedComparison, UndefinedEnvironmentName, ValueError, TypeError):
        return False, False  # a marker packaging cannot evaluate: pip would not install it either
    return plain, with_extra


def analyse_requirements(requires_dist: Iterable[str], served: Container[str],
                         environment: Environment | None = None) -> list[Dependency]:
    """Parse ``Requires-Dist`` lines, evaluate their markers, mark which names this index serves."""
    env = (environment or server_environment()).markers()
    out = []
    for text in requires_dist:
        req = parse_requirement(text)
        if req is None:
            out.append(Dependency(text, None, text, "", (), None, (), False, applies=False))
            continue
        name = str(canonicalize_name(req.name))
        for_extras = marker_extras(req)
        applies, with_extra = _evaluate(req, env, for_extras)
        out.append(Dependency(
            requirement=text,
            name=name,
            display_name=req.name,
            specifier=str(req.specifier),
            extras=tuple(sorted(req.extras)),
            marker=str(req.marker) if req.marker else None,
            for_extras=for_extras,
            served=name in served,
            applies=applies,
            applies_with_extra=with_extra,
        ))
    out.sort(key=lambda d: (d.conditional, d.optional, d.name or ""))
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
