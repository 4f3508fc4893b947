"""Shared fixtures: offline by construction, network blocked in unit tests, models shared per session."""

from __future__ import annotations

import os
import socket

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from qa.settings import Settings  # noqa: E402
from tests.fakes import FakeEmbedder  # noqa: E402

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    loopback = isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1"))
    if loopback or self.family == socket.AF_UNIX:
        return _real_connect(self, address)
    raise OSError(f"network blocked in tests: connect to {address!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Fake models; the extractive style, which most unit tests were written for (the direct
    style's tests ask for it)."""
    return Settings.from_env(env={}, index_dir=tmp_path / "index", cache_dir=tmp_path / "cache",
                             embedder="fake", evidence_embedder="fake", threads=1,
                             answer_style="extractive")


@pytest.fixture
def model_always_drafts(monkeypatch):
    """Extractive style with the model's draft always written: fake embedders' scores aren't
    calibrated like the real one's, so strong evidence could skip the scripted draft."""
    import qa.decision

    monkeypatch.setattr(qa.decision, "STRONG_EVIDENCE", float("inf"))


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    """The default stack: packaged models, the user's model cache, a fresh index."""
    return Settings.from_env(index_dir=tmp_path_factory.mktemp("real") / "index")


@pytest.fixture(scope="session")
def real_pipeline(real_settings):
    from qa.pipeline import Pipeline

    return Pipeline(real_settings).load()
