"""Shared test configuration.

Hypothesis profiles: "ci" (the default), "dev" (more examples) and "asan" (fewer, for
the sanitizer build), chosen with FASTEMBED_HYPOTHESIS_PROFILE.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "asan", max_examples=15, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("FASTEMBED_HYPOTHESIS_PROFILE", "ci"))

# keras_preprocessing 1.1.2 predates numpy 2; its pad_sequences needs this alias.
if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_


@pytest.fixture
def rng(request):
    """A numpy Generator seeded with the test module's RNG_SEED (0 when it sets none), so
    that each module keeps the inputs it was written with."""
    return np.random.default_rng(getattr(request.module, "RNG_SEED", 0))


@pytest.fixture
def threads():
    """Set the native pool size for one test and restore it afterwards."""
    import fastembed as fe

    before = fe.get_num_threads()
    yield fe.set_num_threads
    fe.set_num_threads(before)
