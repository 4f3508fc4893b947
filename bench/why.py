"""Why-questions: does the reader get to read the cause? Evidence only, no model.

    .venv/bin/python bench/why.py [--weights 0 0.1 0.2 0.3 0.5] [--pools 4 8] [--json OUT]

For every answerable why-question (`qa.evidence.asks_why`) of the public sets' tuning and
held-out parts (../shared/bench-data, each split by paragraph, `qa.squad.part_questions`) and of
the project's test set, the default retriever's passages are ranked into sentences with each
`CAUSE_WEIGHT` and each pool: 4 = the usual top 4 passages; 8 = sentences ranked over the top 8,
and the 4 passages holding the best ones kept (`qa.evidence.passages_of_best`); -8 = the
same among the top 8 passages from the top 4's documents only (`qa.evidence.same_documents`). Counted per set
and part: the gold answer (for the test set, one of its evidence spans) in the best sentence
(what the quote fallback shows: `select`) and in the reader's reading list (`reading_list`).
The weight and pool are chosen on the tuning parts and the test set; held-out is reported.
Both are off by default (qa.evidence): docs/quality.md#why-questions has the figures.

    .venv/bin/python bench/why.py eval --weight W --pool P -- <qa eval arguments>

runs `qa eval` on the why-questions only of the chosen set and part (a SQuAD-format set), with
that CAUSE_WEIGHT and WHY_POOL (the file is not edited): the answers, end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import qa.evidence as evidence  # noqa: E402
from bench.retrieval import PUBLIC  # noqa: E402
from qa.embedding import make_embedder  # noqa: E402
from qa.evidence import asks_why, passages_of_best, rank_sentences, same_documents, select  # noqa: E402
from qa.library import open_library  # noqa: E402
from qa.pipeline import remembering  # noqa: E402
from qa.reader import reading_list  # noqa: E402
from qa.retrieval import Retriever  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import open_bench_index, part_questions, read_squad  # noqa: E402
from qa.testset import load_testset  # noqa: E402
from qa.text import normalize  # noqa: E402
from qa.translations import TranslationMemory, translation_memory_path  # noqa: E402

BENCH_INDEX = ROOT / "artifacts" / "bench-index-e5"


def cases_of(settings, embedder):
    """(set, part, retriever, [(question, language, gold texts)])."""
    for name, path in PUBLIC.items():
        squad = read_squad(path)
        index = open_bench_index(squad, embedder, settings, BENCH_INDEX / name, progress=False)
        retriever = Retriever(index, embedder, translations=TranslationMemory(None))
        for part in ("tuning", "held-out"):
            asked = [q for q in part_questions(squad.questions, part)
                     if not q.impossible and asks_why(q.question, q.language)]
            yield name, part, retriever, [(q.question, q.language, q.answers) for q in asked]
    index = open_library(settings, embedder, progress=False)
    corpus = [c.text for c in index.chunks]
    items = load_testset(ROOT / "tests" / "data" / "testset.jsonl", corpus)
    flagship = [("Why is China pushing open-source AI?", "en"),
                ("Pourquoi la Chine mise-t-elle sur l'IA open source ?", "fr")]
    reasons = ("réponse directe aux restrictions américaines", "contrer les sanctions américaines")
    cases = [*[(i.question, i.lang, i.evidence) for i in items if i.answerable and asks_why(i.question, i.lang)],
             *[(q, lang, reasons) for q, lang in flagship]]
    # as `qa eval --translations none` asks them, and as after scripts/setup.sh's `qa translate`
    # (BM25 then also reads the passages' translations: qa.retrieval)
    yield "testset", "tuning", Retriever(index, embedder, translations=TranslationMemory(None)), cases
    prepared = TranslationMemory(translation_memory_path(settings.cache_dir, settings.llm))  # `qa translate`'s
    yield "testset-translated", "tuning", Retriever(index, embedder, translations=prepared), cases


def why_eval(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="qa eval on the why-questions only")
    parser.add_argument("--weight", type=float, required=True, help="CAUSE_WEIGHT for this run")
    parser.add_argument("--pool", type=int, required=True, help="WHY_POOL for this run")
    parser.add_argument("eval_args", nargs=argparse.REMAINDER, help="arguments of `qa eval`, after --")
    args = parser.parse_args(argv)
    import qa.pipeline
    import qa.squad
    from qa.cli import main as qa_main

    evidence.CAUSE_WEIGHT, qa.pipeline.WHY_POOL = args.weight, args.pool
    parts = qa.squad.part_questions
    qa.squad.part_questions = lambda questions, part="all": [
        q for q in parts(questions, part) if asks_why(q.question, q.language)]
    return qa_main(["eval", *[a for a in args.eval_args if a != "--"]])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:
        return why_eval(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--pools", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    settings = Settings(index_dir=ROOT / "index")
    embedder = make_embedder(settings.embedder, threads=settings.threads)
    scorer = make_embedder(settings.evidence_embedder, threads=settings.threads)
    vectors: dict = {}
    embed_passages = remembering(lambda texts: scorer.embed_batch(texts, "passage"), vectors)

    def embed_query(texts):
        return scorer.embed_batch(texts, "query")

    report: dict = {}
    for name, part, retriever, cases in cases_of(settings, embedder):
        counts = {f"w{w}-p{pool}": {"best": 0, "read": 0} for w in args.weights for pool in args.pools}
        for question, language, gold in cases:
            wanted = [normalize(g) for g in gold]
            pool = retriever.retrieve(question, language, max(abs(size) for size in args.pools))
            for w in args.weights:
                evidence.CAUSE_WEIGHT = w
                for size in args.pools:
                    candidates = (same_documents(pool[:-size], settings.top_k) if size < 0  # same documents
                                  else pool[:size])
                    passages = candidates if len(candidates) <= settings.top_k else passages_of_best(
                        rank_sentences(question, language, candidates, embed_query, embed_passages),
                        settings.top_k)
                    ranked = rank_sentences(question, language, passages, embed_query, embed_passages)
                    best = normalize(" ".join(e.text for e in select(ranked)))
                    read = normalize(" ".join(text for _, text in reading_list(ranked)))
                    key = f"w{w}-p{size}"
                    counts[key]["best"] += any(g in best for g in wanted)
                    counts[key]["read"] += any(g in read for g in wanted)
        report[f"{name}/{part}"] = {"questions": len(cases), **counts}
        print(f"{name}/{part}: {len(cases)} why-questions", flush=True)
        for key, c in counts.items():
            print(f"  {key:10} best {c['best']:3}  read {c['read']:3}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
