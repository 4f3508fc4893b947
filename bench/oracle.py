"""The reader's ceiling: the default answer path when retrieval is perfect.

    .venv/bin/python bench/oracle.py testset [--sentences] [--out DIR]
    .venv/bin/python bench/oracle.py SQUAD_FILE --index-dir DIR [--part held-out] [--limit 80]
        [--seed 0] [--sentences] [--out DIR]

Each question is answered by the default pipeline, except that retrieval puts the passages that
hold its answer first: for the project test set, those holding its evidence; for a SQuAD-format
set, the question's own paragraph's passages holding a gold answer (an impossible question: its
own paragraph, the one it was written to be tempting about). The retriever's other passages follow,
up to top_k, so the reader still reads distractors. Everything after retrieval is unchanged:
evidence ranking, the reader, its checks, the second read, the quote.

With `--sentences`, the evidence ranking is made perfect too: the sentences of those passages
that hold the answer (the test set's evidence; a gold answer) go first among the evidence, scored
as the best one, so the reader reads them first and the second read and the quote take them.

So what is still missed here is missed after retrieval (the sentence ranking, the model's
reading, the checks), and the gap between a set's figures here and in its ordinary `qa eval`
run is what perfect retrieval would be worth. A diagnostic: nothing is chosen on it.

The test set runs as the quality gate does (nothing translated); a SQuAD-format set as `qa eval`
does (`--part`, `--limit`, `--seed` draw the same questions; `--index-dir` the benchmark index
that `qa eval` built). Writes report.json (rows as `qa eval` writes them, "ranking" being the
oracle's) and prints the metrics and each failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qa.pipeline  # noqa: E402
from qa.evaluation import by_language, judged, run_testset  # noqa: E402
from qa.evidence import Evidence  # noqa: E402
from qa.index import load_index  # noqa: E402
from qa.metrics import evidence_hit, summarize  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.report import jsonable  # noqa: E402
from qa.retrieval import Retriever  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import (  # noqa: E402
    own_passage_hit,
    part_questions,
    read_squad,
    run_squad,
    sample_questions,
    scored,
    squad_summary,
)
from qa.testset import document_texts, load_testset  # noqa: E402
from qa.text import fold  # noqa: E402
from qa.translations import TranslationMemory  # noqa: E402
from qa.types import Chunk, Language, Passage  # noqa: E402

TESTSET = ROOT / "tests/data/testset.jsonl"
DEPTH = 50  # how deep the real ranking is read for the gold passages' scores and the distractors
# (its first top_k are the real retrieval's own: the fusion ranks Retriever.candidates, 200, either way)


class OracleRetriever:
    """A retriever that puts each known question's gold passages first (`gold`: question ->
    predicate on a chunk), then the real retriever's other passages."""

    def __init__(self, real: Retriever, gold: dict[str, Callable[[Chunk], bool]]) -> None:
        self.real = real
        self.gold = gold
        self.translations = real.translations  # Pipeline.load keeps a retriever with its memory

    def retrieve(self, question: str, language: Language, top_k: int) -> list[Passage]:
        ranked = self.real.retrieve(question, language, max(top_k, DEPTH))
        wanted = self.gold.get(question)
        if wanted is None:
            return ranked[:top_k]
        gold = [p.chunk for p in ranked if wanted(p.chunk)]
        seen = {c.chunk_id for c in gold}
        gold += [c for c in self.real.chunks if wanted(c) and c.chunk_id not in seen]
        gold = gold[:top_k]
        given = {c.chunk_id for c in gold}
        query = self.real.embedder.embed_batch([question], "query")[0]
        position = {c.chunk_id: i for i, c in enumerate(self.real.chunks)}
        top = max((p.score for p in ranked), default=1.0)
        first = [Passage(0, c, top, self.real._cosine(query, position[c.chunk_id])) for c in gold]
        rest = [p for p in ranked if p.chunk.chunk_id not in given]
        return [Passage(n, p.chunk, p.score, p.dense_score)
                for n, p in enumerate([*first, *rest][:top_k], start=1)]

    def __getattr__(self, name: str):
        return getattr(self.real, name)


def gold_first(ranked: Sequence[Evidence], wanted: Callable[[Chunk, str], bool]) -> list[Evidence]:
    """`ranked` with the sentences `wanted` (chunk, sentence text) first, in their order, each
    scored as the best sentence was.

    >>> from qa.types import Chunk, Passage
    >>> p = Passage(1, Chunk("d#0", "d", "d.txt", 0, 10, "Aa. Bb. Cc", "fr"), 1.0, 1.0)
    >>> ranked = [Evidence(p, 0, 3, 0.9), Evidence(p, 4, 7, 0.5), Evidence(p, 8, 10, 0.1)]
    >>> [(e.text, e.score) for e in gold_first(ranked, lambda c, t: t == "Cc")]
    [('Cc', 0.9), ('Aa.', 0.9), ('Bb.', 0.5)]
    """
    if not ranked:
        return []
    top = ranked[0].score
    gold = [Evidence(e.passage, e.start, e.end, max(top, e.score), e.cosine)
            for e in ranked if wanted(e.passage.chunk, e.text)]
    return gold + [e for e in ranked if not wanted(e.passage.chunk, e.text)]


def with_oracle(pipeline: Pipeline, gold: dict[str, Callable[[Chunk], bool]],
                sentences: dict[str, Callable[[Chunk, str], bool]] | None = None) -> Pipeline:
    """`pipeline` with the gold passages retrieved first; with `sentences`, their answering
    sentences ranked first too (for this process: the pipeline module's ranking is wrapped)."""
    pipeline.load()
    pipeline._retriever = OracleRetriever(pipeline._retriever, gold)
    if sentences:
        rank = qa.pipeline.rank_sentences

        def ranked_with_gold(question, language, passages, embed_query, embed_passages):
            ranked = rank(question, language, passages, embed_query, embed_passages)
            wanted = sentences.get(question)
            return gold_first(ranked, wanted) if wanted else ranked

        qa.pipeline.rank_sentences = ranked_with_gold
    return pipeline


def holds(text: str, pieces: Sequence[str]) -> bool:
    """Whether a sentence holds one of `pieces` or lies inside one (folded)."""
    t = fold(" ".join(text.split()))
    return any(f in t or t in f for f in (fold(" ".join(p.split())) for p in pieces) if f)


def answer_testset(settings: Settings, limit: int | None, by_sentence: bool) -> tuple[dict, list[dict]]:
    pipeline = Pipeline(settings, translations=TranslationMemory(None)).load()  # as the gate: nothing translated
    items = load_testset(TESTSET, document_texts(pipeline.index.chunks))
    gold = {i.question: (lambda c, e=i.evidence: evidence_hit(c.text, e)) for i in items if i.answerable}
    sentences = {i.question: (lambda c, t, e=i.evidence: holds(t, e)) for i in items if i.answerable}
    rows = run_testset(with_oracle(pipeline, gold, sentences if by_sentence else None), items, settings.top_k,
                       limit, progress=True)
    outcomes, rows = judged(rows, items)
    return by_language(outcomes, summarize), rows


def answer_squad(settings: Settings, path: Path, index_dir: Path, part: str, limit: int,
                 seed: int, by_sentence: bool) -> tuple[dict, list[dict]]:
    data = read_squad(path)
    questions = sample_questions(part_questions(data.questions, part), limit, seed)
    pipeline = Pipeline(settings, index=load_index(index_dir), translations=TranslationMemory(None)).load()
    gold = {q.question: ((lambda c, q=q: c.doc_id == q.doc_id) if q.impossible
                         else (lambda c, q=q: own_passage_hit(q, c))) for q in questions}
    sentences = {q.question: (lambda c, t, q=q: c.doc_id == q.doc_id and holds(t, q.answers))
                 for q in questions if not q.impossible}
    rows = run_squad(with_oracle(pipeline, gold, sentences if by_sentence else None), questions, settings.top_k,
                     progress=True)
    scores, rows = scored(rows, questions)
    return {"all": squad_summary(scores)}, rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", help="testset, or a SQuAD-format file")
    parser.add_argument("--index-dir", type=Path, help="a SQuAD set's benchmark index (built by qa eval)")
    parser.add_argument("--part", default="held-out", choices=("all", "tuning", "held-out"))
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentences", action="store_true", help="rank the answering sentences first too")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts/oracle")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.set == "testset":
        metrics, rows = answer_testset(settings, args.limit, args.sentences)
    else:
        if args.index_dir is None:
            parser.error("a SQuAD-format set needs --index-dir")
        metrics, rows = answer_squad(settings, Path(args.set), args.index_dir, args.part, args.limit, args.seed,
                                     args.sentences)
    args.out.mkdir(parents=True, exist_ok=True)
    oracle = "gold passages" + (" and sentences" if args.sentences else "") + " first"
    report = {"config": {"set": args.set, "part": args.part, "limit": args.limit, "seed": args.seed,
                         "oracle": oracle}, "metrics": metrics, "rows": rows}
    (args.out / "report.json").write_text(json.dumps(jsonable(report), ensure_ascii=False, indent=1),
                                          encoding="utf-8")
    for name, values in metrics.items():
        shown = {k: round(v, 3) for k, v in values.items() if isinstance(v, float)}
        print(name, json.dumps(shown))
    for row in rows:
        if row["failure"]:
            print(f"{row['id']}: {row['failure']} | {row['question']} -> {row['answer'][:160]}")
    print(f"report: {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
