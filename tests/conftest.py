"""Shared test fixtures. Every random test is seeded from ``seed``, printed in the header.

``DROPLAB_TEST_SEED=<int>`` fixes it, ``DROPLAB_TEST_SEED=random`` draws one (the suite must
pass for any seed: statistical bounds are derived, not tuned to one seed).
"""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

_env = os.environ.get("DROPLAB_TEST_SEED", "20261122")
TEST_SEED = secrets.randbits(32) if _env == "random" else int(_env)


def pytest_report_header(config):
    return f"droplab test seed: DROPLAB_TEST_SEED={TEST_SEED}"


@pytest.fixture
def seed() -> int:
    """The session's test seed (an int)."""
    return TEST_SEED


@pytest.fixture
def rng(seed) -> np.random.Generator:
    """A Generator seeded from the session's test seed."""
    return np.random.default_rng(seed)
