import shutil

import numpy as np
import pytest

from qa.embedding import SentenceTransformerEmbedder, make_embedder, minilm_folder
from qa.errors import ModelError


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
