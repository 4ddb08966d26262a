"""Shared test fixtures.

``shared_data``: the real-data folder ``../shared/data`` (relative to the repository root; the
environment variable ``CHROMTRANSFER_SHARED_DATA`` overrides it). Tests that need it skip with a
clear message when it is absent; its files are never copied into the repository.

``one_torch_thread``: one intra-op torch thread for a test module (``pytestmark``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("CHROMTRANSFER_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real-data folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA} (tests that need ../shared/data are skipped)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module, restored afterwards.

    The tests' models and batches are small: on a busy 2-core machine more threads cost far more
    than they gain, and one thread gives the same numbers in every process.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
