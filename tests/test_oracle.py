"""bench/oracle.py's retriever: the gold passages first, the real ranking's others after them."""

from bench.oracle import OracleRetriever, gold_first, holds
from qa.chunking import chunk_documents
from qa.evidence import Evidence
from qa.index import build_index
from qa.loading import make_document
from qa.retrieval import Retriever
from qa.types import Chunk, Passage
from tests.fakes import FakeEmbedder

TEXTS = ["Qwen vient d'Alibaba.", "ERNIE vient de Baidu.", "Hunyuan vient de Tencent.", "Kimi vient de Moonshot."]


def oracle(gold):
    docs = [make_document(f"d{i}.txt", text) for i, text in enumerate(TEXTS)]
    embedder = FakeEmbedder()
    chunks = chunk_documents(docs, 600, 0)
    index = build_index(chunks, embedder, chunk_size=600, chunk_overlap=0, corpus_hash="x", sources=[])
    real = Retriever(index, embedder)
    return real, OracleRetriever(real, gold)


def test_the_gold_passage_comes_first_even_when_the_real_ranking_misses_it():
    question = "D'où vient Qwen ?"
    real, retriever = oracle({question: lambda c: c.source == "d3.txt"})
    assert real.retrieve(question, "fr", 2)[0].chunk.source != "d3.txt"
    passages = retriever.retrieve(question, "fr", 2)
    assert [p.chunk.source for p in passages] == ["d3.txt", real.retrieve(question, "fr", 1)[0].chunk.source]
    assert [p.n for p in passages] == [1, 2]
    assert passages[0].score >= passages[1].score


def test_a_question_without_gold_gets_the_real_ranking():
    real, retriever = oracle({})
    question = "D'où vient ERNIE ?"
    assert [p.chunk.chunk_id for p in retriever.retrieve(question, "fr", 3)] == \
        [p.chunk.chunk_id for p in real.retrieve(question, "fr", 3)]


def test_the_answering_sentence_leads_the_evidence_scored_as_the_best():
    p = Passage(1, Chunk("d#0", "d", "d.txt", 0, 40, "Qwen vient d'Alibaba. Kimi vient de Moonshot.", "fr"), 1.0, 1.0)
    ranked = [Evidence(p, 0, 21, 0.9, 0.5), Evidence(p, 22, 46, 0.4, 0.3)]
    first = gold_first(ranked, lambda c, t: holds(t, ["vient de Moonshot"]))
    assert [e.text for e in first] == ["Kimi vient de Moonshot.", "Qwen vient d'Alibaba."]
    assert [e.score for e in first] == [0.9, 0.9] and first[0].cosine == 0.3
    assert gold_first(ranked, lambda c, t: False) == ranked
