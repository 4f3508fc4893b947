import numpy as np
import pytest

from qa.chunking import chunk_documents
from qa.index import build_index
from qa.loading import make_document
from qa.retrieval import Retriever, _scores, rrf_fuse
from qa.text import tokenize
from tests.fakes import FakeEmbedder


def test_rrf_worked_example():
    fused = rrf_fuse([([7, 3], 1.0), ([3, 9], 0.5)], k=1)
    assert fused == pytest.approx({7: 0.5, 3: 1 / 3 + 0.5 / 2, 9: 0.5 / 3})


def test_rrf_per_item_weights():
    fused = rrf_fuse([([1, 2], [1.0, 0.0])], k=0)
    assert fused == {1: 1.0, 2: 0.0}


FRENCH = [
    "Le programme américain sur l’intelligence artificielle a été publié en juillet 2025 par la Maison-Blanche.",
    "La famille Qwen d’Alibaba compte plus de cent mille modèles dérivés dans le monde entier.",
    "Plan plan plan : une action, des actions, un plan d’action général pour les entreprises.",
]
# A stand-in for a multilingual model: English words map onto the French ones.
SYNONYMS = {"published": "publie", "derived": "derives", "models": "modeles", "american": "americain",
            "july": "juillet", "white": "maison-blanche", "house": "maison-blanche"}


@pytest.fixture
def retriever():
    docs = [make_document(f"fr{i}.txt", text) for i, text in enumerate(FRENCH)]
    embedder = FakeEmbedder(synonyms=SYNONYMS)
    chunks = chunk_documents(docs, 600, 0)
    index = build_index(chunks, embedder, chunk_size=600, chunk_overlap=0, corpus_hash="x", sources=[])
    return Retriever(index, embedder)


def test_english_question_finds_the_french_passage_despite_lexical_noise(retriever):
    question = "When was the American plan published by the White House?"
    passages = retriever.retrieve(question, "en", top_k=3)
    assert passages[0].chunk.source == "fr0.txt"
    assert [p.n for p in passages] == [1, 2, 3]
    # what the guard prevents: BM25 on all the English words matches "plan" in the wrong
    # passage, and fused at full weight it would outrank the dense winner
    naive = _scores(retriever._bm25, tokenize(question, "en"), len(retriever.chunks))
    naive_rank = [int(i) for i in naive.argsort()[::-1] if naive[i] > 0]
    assert retriever.chunks[naive_rank[0]].source == "fr2.txt"
    dense_rank = list(retriever.dense_scores(question).argsort()[::-1])
    fused = rrf_fuse([(dense_rank, 1.0), (naive_rank, 1.0)])
    assert retriever.chunks[max(fused, key=fused.get)].source == "fr2.txt"


def test_names_still_match_across_languages(retriever):
    unaware = Retriever(retriever.index, FakeEmbedder())  # no synonyms: dense sees little
    passages = unaware.retrieve("How big is the Qwen family from Alibaba?", "en", top_k=1)
    assert passages[0].chunk.source == "fr1.txt"


class Memory(dict):
    """A translation memory: {(sentence, target language): translation}."""

    def get(self, text, target):
        return super().get((text, target))


ENGLISH = [
    "The American programme on artificial intelligence was published in July 2025 by the White House.",
    "Alibaba's Qwen family counts more than one hundred thousand derivative models around the whole world.",
    "Plan, plan, plan: an action, actions, a general plan of action for companies.",
]


def test_translations_let_bm25_read_a_foreign_passage(retriever):
    question = "How many derivatives does the family count around the world?"  # no name, no number
    blind = Retriever(retriever.index, FakeEmbedder())  # dense sees nothing across languages
    assert blind.lexical_ranking(question, "en") == []
    memory = Memory({(fr, "en"): en for fr, en in zip(FRENCH, ENGLISH, strict=True)})
    reading = Retriever(retriever.index, FakeEmbedder(), translations=memory)
    assert reading.lexical_ranking(question, "en") == [1]
    assert list(reading.readable("en")) == [True, True, True]
    assert reading.retrieve(question, "en", top_k=1)[0].chunk.source == "fr1.txt"
    assert reading.lexical_ranking("Combien de modèles dérivés ?", "fr") == [1]  # French: as before


def test_a_partly_translated_index_is_read_by_names_only(retriever):
    # reading only the translated passages would favour them over the others
    memory = Memory({(FRENCH[1], "en"): ENGLISH[1], (FRENCH[2], "en"): ENGLISH[2]})
    reading = Retriever(retriever.index, FakeEmbedder(), translations=memory)
    assert reading.translated_view("en") is None  # 2 of 3 sentences: below 0.95
    assert reading.lexical_ranking("How many derivative models?", "en") == []
    assert list(reading.readable("en")) == [False, False, False]
    memory[(FRENCH[0], "en")] = ENGLISH[0]  # the memory grows: now all are translated
    assert reading.lexical_ranking("How many derivative models?", "en") == [1]


def test_untranslated_sentences_still_offer_their_names(retriever):
    memory = Memory({(FRENCH[2], "en"): ENGLISH[2]})
    reading = Retriever(retriever.index, FakeEmbedder(), translations=memory, min_coverage=0.3)
    assert reading.lexical_ranking("How big is the Qwen family from Alibaba?", "en") == [1]
    assert reading.lexical_ranking("What does the general plan say?", "en") == [2]  # translated
    assert list(reading.readable("en")) == [False, False, True]


def test_same_language_lexical_match_counts_fully(retriever):
    lexical_only = Retriever(retriever.index, FakeEmbedder(), cross_lingual_weight=0.25)
    passages = lexical_only.retrieve("Combien de modèles dérivés compte Qwen ?", "fr", top_k=1)
    assert passages[0].chunk.source == "fr1.txt"


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_every_mode_returns_numbered_passages_best_first(retriever, mode):
    retriever.mode = mode
    passages = retriever.retrieve("Qwen models", "en", top_k=2)
    assert [p.n for p in passages] == [1, 2]
    assert passages[0].score >= passages[1].score


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_fewer_candidates_than_passages_keep_the_best_and_true_cosines(retriever, mode):
    question = "Combien de modèles dérivés compte la famille Qwen ?"
    exact = Retriever(retriever.index, retriever.embedder, mode=mode)
    shallow = Retriever(retriever.index, retriever.embedder, mode=mode, candidates=1)
    got = shallow.retrieve(question, "fr", top_k=2)  # 2 of the 3 passages from each ranking
    assert got[0].chunk == exact.retrieve(question, "fr", top_k=2)[0].chunk
    cosines = exact.dense_scores(question)  # a passage beyond the dense candidates keeps its own
    assert [p.dense_score for p in got] == pytest.approx([cosines[exact.chunks.index(p.chunk)] for p in got])


def test_bm25_finds_a_passage_by_its_document_title_and_it_is_shown_without_it():
    texts = {"mediation-familiale.txt": "Une séance coûte entre 2 et 131 euros selon les revenus.",
             "pension-alimentaire.txt": "Le montant dépend des revenus et du nombre d’enfants."}
    docs = [make_document(name, text) for name, text in texts.items()]
    embedder = FakeEmbedder()
    index = build_index(chunk_documents(docs, 600, 0), embedder, chunk_size=600, chunk_overlap=0,
                        corpus_hash="x", sources=[])
    question = "Et la médiation familiale ?"  # neither passage says it: one title does
    assert Retriever(index, embedder, lexical_headers="").lexical_ranking(question, "fr") == []
    for mode in ("bm25", "hybrid"):
        (passage,) = Retriever(index, embedder, mode=mode).retrieve(question, "fr", top_k=1)
        assert passage.chunk.source == "mediation-familiale.txt"
        assert passage.chunk.text == texts["mediation-familiale.txt"]  # what is shown and quoted


def test_a_header_every_passage_shares_is_left_out_of_bm25():
    doc = make_document("qwen-alibaba.txt", " ".join(FRENCH))
    embedder = FakeEmbedder()
    index = build_index(chunk_documents([doc], 60, 0), embedder, chunk_size=60, chunk_overlap=0,
                        corpus_hash="x", sources=[])
    assert len(index.chunks) > 2
    question = "Combien de modèles Qwen chez Alibaba ?"
    with_headers, without = Retriever(index, embedder), Retriever(index, embedder, lexical_headers="")
    assert np.array_equal(_scores(with_headers._bm25, tokenize(question, "fr"), len(index.chunks)),
                          _scores(without._bm25, tokenize(question, "fr"), len(index.chunks)))
