"""Fixtures for the security tests: cheap password hashing unless a test measures hashing itself."""

import pytest


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
