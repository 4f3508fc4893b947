"""The index stores compared: the FAISS folder against PostgreSQL with pgvector, and bm25s against
PostgreSQL's full-text search for the lexical side. One sitting, medians.

    QA_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/stores.py [--sizes 20000] [--json OUT]

Starts pgserver's bundled PostgreSQL (with pgvector) in a temporary folder, stores the bundled
article in both stores with the default embedder and measures:
- retrieval quality on the project test set (`qa eval --retrieval-only`'s baselines, with this
  machine's translation memory) from each store, and with the lexical ranking taken from
  PostgreSQL's full-text search (`ts_rank_cd` over `to_tsvector(<passage language>, text)`, the
  question's words OR-ed) instead of bm25s;
- search latency (`Index.search` for the fusion's 200 candidates, and for 10) on the article and
  on random unit vectors at `--sizes`, with recall@10 of pgvector's HNSW against exact search;
- a whole retrieval (`Retriever.retrieve`, embedding excluded) per question from each store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.embedding import make_embedder
from qa.evaluation import QueryCache, evaluate_testset
from qa.index import Index, Manifest, vector_store
from qa.library import index_sources
from qa.loading import BUNDLED
from qa.pgstore import PostgresStore
from qa.retrieval import Retriever
from qa.settings import Settings
from qa.text import fold
from qa.types import Chunk

ROOT = Path(__file__).resolve().parents[1]
TESTSET = ROOT / "tests" / "data" / "testset.jsonl"
CONFIG = {"fr": "french", "en": "english"}


def median_ms(call, repeat: int = 50) -> float:
    call()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


class FullTextRetriever(Retriever):
    """The hybrid retriever with PostgreSQL's full-text ranking in place of bm25s."""

    store: PostgresStore | None = None

    def lexical_ranking(self, question: str, language: str) -> list[int]:
        words = [w for w in fold(question).replace("'", " ").split() if w.isalnum()]
        if not words:
            return []
        positions = {i: p for p, i in enumerate(self.index.vectors.ids)}
        rows = self.store._connection().execute(
            "SELECT id FROM (SELECT id, ts_rank_cd(to_tsvector(CASE chunk->>'language' WHEN 'fr' THEN "
            "'french'::regconfig ELSE 'english'::regconfig END, unaccent_text(chunk->>'text')), q) AS r "
            "FROM passages, to_tsquery(%s::regconfig, %s) AS q) s WHERE r > 0 ORDER BY r DESC",
            (CONFIG[language], " | ".join(words))).fetchall()
        return [positions[i] for (i,) in rows if i in positions]


def quality(settings: Settings, pg: Settings, embedder) -> dict:
    out = {}
    for name, s in (("faiss + bm25s", settings), ("pgvector + bm25s", pg)):
        report = evaluate_testset(TESTSET, s, answers=False, progress=False)
        out[name] = report["baselines"]
    store = PostgresStore.connect(pg.store)
    store._connection().execute(
        "CREATE OR REPLACE FUNCTION unaccent_text(t text) RETURNS text LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT translate(lower(t), 'àâäéèêëîïôöùûüç’', 'aaaeeeeiioouuuc''') $$")
    index = store.load()
    FullTextRetriever.store = store
    import qa.evaluation

    real = qa.evaluation.Retriever
    qa.evaluation.Retriever = FullTextRetriever
    try:
        report = evaluate_testset(TESTSET, pg, answers=False, progress=False)
        out["pgvector + PostgreSQL FTS"] = report["baselines"]
    finally:
        qa.evaluation.Retriever = real
    del index
    return out


def latency(settings: Settings, pg: Settings, embedder, sizes: list[int]) -> list[dict]:
    rows = []
    questions = [json.loads(line)["question"] for line in TESTSET.read_text(encoding="utf-8").splitlines() if line]
    cache = QueryCache(embedder, questions)
    queries = [cache.embed_batch([q], "query")[0] for q in questions]
    from qa.stores import make_store

    folder, postgres = make_store(settings).load(), make_store(pg).load()
    for name, index in (("faiss", folder), ("pgvector", postgres)):
        retriever = Retriever(index, cache)
        rows.append({"store": name, "passages": len(index.chunks),
                     "search_200_ms": median_ms(lambda idx=index: [idx.search(q, 200) for q in queries[:20]]) / 20,
                     "search_10_ms": median_ms(lambda idx=index: [idx.search(q, 10) for q in queries[:20]]) / 20,
                     "retrieve_ms": median_ms(lambda r=retriever: [r.retrieve(q, "fr", 4) for q in questions[:20]],
                                              repeat=10) / 20})
    rng = np.random.default_rng(0)
    for size in sizes:
        vectors = rng.standard_normal((size, 512)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = tuple(Chunk(f"x#{i}", "x", "x", 0, 1, "x", "fr") for i in range(size))
        manifest = Manifest(2, "random", 512, 600, 150, "", (), size, "")
        exact = Index(manifest, chunks, vector_store(vectors))
        base, _, query = pg.store.partition("?")
        url = f"{base.rsplit('/', 1)[0]}/scale{size}?{query}"
        _create_database(pg.store, f"scale{size}")
        store = PostgresStore(url)
        started = time.perf_counter()
        stored = store.save(exact)
        build_s = time.perf_counter() - started
        probes = rng.standard_normal((50, 512)).astype(np.float32)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        truth = [{i for i, _ in exact.search(q, 10)} for q in probes]
        found = [{i for i, _ in stored.search(q, 10)} for q in probes]
        recall = float(np.mean([len(t & f) / 10 for t, f in zip(truth, found, strict=True)]))
        for name, index in (("faiss", exact), ("pgvector", stored)):
            probe = probes[0]
            rows.append({"store": name, "passages": size,
                         "search_200_ms": median_ms(lambda idx=index, q=probe: idx.search(q, 200), repeat=30),
                         "search_10_ms": median_ms(lambda idx=index, q=probe: idx.search(q, 10), repeat=30),
                         **({"recall_at_10": recall, "save_s": build_s} if name == "pgvector" else {})})
    return rows


def _create_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-quality", action="store_true", help="latency only")
    args = parser.parse_args()
    import pgserver

    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(tempfile.mkdtemp(prefix="qa-bench-pg-"), cleanup_mode="delete")
        try:
            settings = Settings.from_env(index_dir=Path(tmp) / "index")
            pg = settings.with_(store=server.get_uri())
            embedder = make_embedder(settings.embedder, threads=settings.threads)
            index_sources([BUNDLED], embedder, settings)
            index_sources([BUNDLED], embedder, pg)
            cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                        if line.startswith("model name")), "?")
            result = {"cpu": cpu, "threads": settings.threads,
                      "quality": None if args.no_quality else quality(settings, pg, embedder)}
            print(json.dumps(result, indent=1), flush=True)
            result["latency"] = latency(settings, pg, embedder, args.sizes)
        finally:
            server.cleanup()
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
