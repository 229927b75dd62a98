"""Fixtures for publishing tests (helpers live in pubhelpers.py)."""
from __future__ import annotations

import pytest
from pubhelpers import make_users

from pypi_repo.auth import AuthService


@pytest.fixture
def users(overrides) -> AuthService:
    """alice, bob (new projects and their own) and carol (every project) in the app's database."""
    return make_users(overrides)
