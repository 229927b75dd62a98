"""File-name parsing and project-name normalization: tables, as packaging defines them."""
from __future__ import annotations

import pytest

from pypi_repo.distfiles import canonical_project_name, parse_distribution_filename
from pypi_repo.errors import InvalidFilename, InvalidName


@pytest.mark.parametrize(
    "filename, name, version, kind",
    [
        ("payo_cli-1.0.0-py3-none-any.whl", "payo-cli", "1.0.0", "wheel"),
        ("payo_cli-1.0.0.tar.gz", "payo-cli", "1.0.0", "sdist"),
        ("Django-4.2.1-py3-none-any.whl", "django", "4.2.1", "wheel"),
        ("zope.interface-6.0-cp311-cp311-manylinux_2_17_x86_64.whl", "zope-interface", "6.0", "wheel"),
        ("pkg-1.0rc1-1-py3-none-any.whl", "pkg", "1.0rc1", "wheel"),  # build tag
        ("pkg-2.0.post1.dev3.zip", "pkg", "2.0.post1.dev3", "sdist"),  # legacy zip sdist
        ("pkg-1.0+local.7.tar.gz", "pkg", "1.0+local.7", "sdist"),
        ("legacy-name-1.0.tar.gz", "legacy-name", "1.0", "sdist"),
    ],
)
def test_distribution_filenames_parse(filename, name, version, kind):
    dist = parse_distribution_filename(filename)
    assert (dist.name, str(dist.version), dist.kind) == (name, version, kind)


@pytest.mark.parametrize(
    "filename",
    [
        "", "pkg.whl", "pkg-1.0.exe", "pkg-1.0.tar.bz2", "../pkg-1.0.tar.gz", "a/pkg-1.0.tar.gz",
        "pkg-1.0.tar.gz\x00", ".hidden-1.0.tar.gz", "pkg-notaversion-py3-none-any.whl",
        "pkg-1.0-py3-none.whl", "x" * 300 + "-1.0.tar.gz", "pkg\\1.0.tar.gz", "pkg-1.0.tar.gz\n",
    ],
)
def test_bad_filenames_are_rejected(filename):
    with pytest.raises(InvalidFilename):
        parse_distribution_filename(filename)


@pytest.mark.parametrize(
    "raw, canonical",
    [("Payo_CLI", "payo-cli"), ("payo.cli", "payo-cli"), ("PAYO--cli", "payo-cli"), ("a", "a"), ("A1_b2", "a1-b2")],
)
def test_project_names_normalize_per_pep_503(raw, canonical):
    assert canonical_project_name(raw) == canonical


@pytest.mark.parametrize("raw", ["", "-abc", "abc-", "a b", "é", "a/b", "..", "x" * 20000, "a\x00b"])
def test_invalid_project_names_are_rejected(raw):
    with pytest.raises(InvalidName):
        canonical_project_name(raw)
