"""Fixtures for the lab tests: a private cache and data root per test, and no network."""

from __future__ import annotations

import urllib.request

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Point the cache and the standard-set root at empty temp folders; forbid downloads.

    Tests must never read the user's ~/.cache/actlab nor reach the network: a test that means
    to exercise the download path replaces ``urlopen`` itself.
    """
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ACTLAB_DATA", str(tmp_path / "datasets"))

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access in a test: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


@pytest.fixture(scope="session")
def mnist1d_cache(tmp_path_factory):
    """One cache folder shared by the mnist1d tests, so the generator runs once per session."""
    return tmp_path_factory.mktemp("mnist1d-cache")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Run the lab tests on one intra-op thread.

    The tensors here are tiny, so threads buy nothing, and on a shared 2-core machine two
    OpenMP threads that spin-wait for a busy core made a 1-second training test take 10-20 s.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
