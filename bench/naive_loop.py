"""The naive loop of issue 5, scored as `qa eval` scores the pipeline, so the two compare.

    .venv/bin/python bench/naive_loop.py DATASET [DATASET...] [--limit N] [--seed 0] [--out artifacts/bench/naive.json]

The naive loop: dense retrieval with the project's multilingual embedder, the top 4 passages, one
instruction prompt (answer in one or two sentences in the question's language, cite [n], reply
NOT FOUND when the sources don't contain the answer), greedy generation with the configured model
and max_new_tokens. Nothing is checked afterwards: a reply containing NOT FOUND is an abstention,
any other reply is the answer, and its in-range [n] markers are its citations (quote: the whole
passage).

DATASET is the project's JSONL test set (over the current index; `--limit` questions chosen as
`qa eval` does, the languages in turn) or a SQuAD-format .json file (over its index in
index-bench/, `--limit` questions sampled with `--seed`, as `qa eval` does). Answers are judged
by the project's own scorers (`qa.evaluation.judge`, `qa.squad.score_row`); recall@k is that of
the dense ranking the loop answers from. Prints the main metrics per dataset and group, and
writes all of them with the per-question rows to --out. A benchmark, not a test: no thresholds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from qa.citations import parse_markers
from qa.embedding import Embedder, make_embedder
from qa.evaluation import _passage_json, by_language, config, failure_reason, judge
from qa.generation import Generator, make_generator
from qa.index import Index
from qa.language import detect_language
from qa.library import open_index
from qa.metrics import RANKING_DEPTH, summarize
from qa.prompting import sanitize
from qa.report import format_value, jsonable
from qa.retrieval import Retriever
from qa.settings import Settings
from qa.squad import (
    default_bench_dir,
    open_bench_index,
    read_squad,
    sample_questions,
    score_row,
    squad_failure,
    squad_summary,
)
from qa.testset import document_texts, load_testset, select
from qa.types import Answer, Citation, Passage

TOP_K = 4
SYSTEM = ("You answer questions from the numbered sources, which may be in French or English. Answer in the "
          "language of the question, in one or two sentences, and cite the sources you use as [n]. If the "
          "sources don't contain the answer, reply exactly NOT FOUND.")
COLUMNS = ("questions", "answer_correct", "answer_contains_gold", "f1", "exact_match", "abstention_recall",
           "false_abstention", "language_match", "citation_precision", "total_s_median")


def naive_messages(question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    listed = "\n".join(f"[{p.n}] {sanitize(p.chunk.text)}" for p in passages)
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Sources:\n{listed}\n\nQuestion: {sanitize(question)}"}]


class NaiveLoop:
    """Dense retrieval, one prompt, one greedy generation, no verification."""

    def __init__(self, index: Index, embedder: Embedder, generator: Generator, max_new_tokens: int) -> None:
        self.retriever = Retriever(index, embedder, mode="dense")
        self.generator = generator
        self.max_new_tokens = max_new_tokens

    def ask(self, question: str) -> tuple[Answer, list[Passage]]:
        """The answer over the top 4 passages, and the top RANKING_DEPTH (the same ranking, for recall@k)."""
        started = time.perf_counter()
        language = detect_language(question, default="fr")
        ranking = self.retriever.retrieve(question, language, RANKING_DEPTH)
        passages = ranking[:TOP_K]  # dense order is deterministic: the top 4 of the top 5
        retrieved = time.perf_counter()
        pieces: list[str] = []
        first = math.nan
        for piece in self.generator.stream(naive_messages(question, passages), self.max_new_tokens):
            if not pieces:
                first = time.perf_counter()
            pieces.append(piece)
        done = time.perf_counter()
        reply = "".join(pieces).strip()
        abstained = "not found" in reply.lower()
        valid, _ = parse_markers(reply, len(passages))
        chunks = {p.n: p.chunk for p in passages}
        citations = () if abstained else tuple(  # support: not checked by the naive loop
            Citation(n, chunks[n], chunks[n].text, chunks[n].start, chunks[n].end, math.nan) for n in valid)
        answer = Answer(question, language, "" if abstained else reply, abstained, citations, tuple(passages),
                        timings={"retrieval_s": retrieved - started, "total_s": done - started,
                                 "first_token_s": (done if math.isnan(first) else first) - started},
                        models={"embedder": self.retriever.embedder.name, "llm": self.generator.name},
                        draft=reply)
        return answer, ranking


def progress(items: Sequence, name: str) -> Iterator:
    from tqdm import tqdm

    return iter(tqdm(items, desc=f"Answering {name}", unit="question"))


def run_testset(path: Path, settings: Settings, embedder: Embedder, generator: Generator,
                limit: int | None) -> dict:
    index = open_index(settings, embedder)
    items = select(load_testset(path, document_texts(index.chunks)), limit)
    naive, rows, outcomes = NaiveLoop(index, embedder, generator, settings.max_new_tokens), [], []
    for item in progress(items, path.name):
        answer, ranking = naive.ask(item.question)
        row = {"id": item.id, **answer.to_json(), "ranking": [_passage_json(p) for p in ranking]}
        outcome = judge(row, item)
        outcomes.append(outcome)
        rows.append({**row, "lang": item.lang, "answerable": item.answerable,
                     "expected": item.reference if item.answerable else "(abstain)",
                     "failure": failure_reason(outcome),
                     "judgement": {"correct": outcome.correct, "citation_hits": list(outcome.citation_hits),
                                   "answer_language": outcome.answer_language,
                                   "retrieval_hits": list(outcome.retrieval_hits)}})
    return {"config": config("naive-testset", path, settings, embedder.name, generator.name, limit=limit,
                             questions=len(items)),
            "metrics": by_language(outcomes, summarize), "rows": rows}


def run_squad(path: Path, settings: Settings, embedder: Embedder, generator: Generator,
              limit: int | None, seed: int) -> dict:
    squad = read_squad(path)
    index_dir = default_bench_dir(settings, squad.name)
    index = open_bench_index(squad, embedder, settings, index_dir)
    questions = sample_questions(squad.questions, limit, seed)
    naive, rows, scores = NaiveLoop(index, embedder, generator, settings.max_new_tokens), [], []
    for q in progress(questions, path.name):
        answer, _ = naive.ask(q.question)
        row = {"id": q.id, **answer.to_json(), "gold": list(q.answers), "impossible": q.impossible}
        score = score_row(row, q)
        scores.append(score)
        rows.append({**row, "lang": score.outcome.lang, "answerable": score.outcome.answerable,
                     "expected": " | ".join(dict.fromkeys(q.answers)) or "(abstain)",
                     "failure": squad_failure(score), "exact_match": score.exact_match, "f1": score.f1})
    return {"config": config("naive-squad", path, settings, embedder.name, generator.name, limit=limit, seed=seed,
                             questions=len(questions), index_dir=str(index_dir)),
            "metrics": {"all": squad_summary(scores)}, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path, metavar="DATASET", help="a .jsonl test set or SQuAD .json")
    parser.add_argument("--limit", type=int, help="ask at most N questions per dataset")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for SQuAD-format files")
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench/naive.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    settings = Settings.from_env()
    embedder = make_embedder(settings.embedder, threads=settings.threads)
    generator = make_generator(settings.llm, settings.cache_dir, threads=settings.threads)
    if hasattr(generator, "load"):  # load and warm up before timing anything, as `Pipeline.load` does
        generator.load()
    embedder.embed_batch(["warm up"], "query")
    detect_language("warm up")

    report: dict = {"top_k": TOP_K, "system_prompt": SYSTEM, "datasets": {}}
    for path in args.datasets:
        if path.suffix.lower() == ".json":
            result = run_squad(path, settings, embedder, generator, args.limit, args.seed)
        else:
            result = run_testset(path, settings, embedder, generator, args.limit)
        report["datasets"][path.stem] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(jsonable(report), indent=1, ensure_ascii=False), encoding="utf-8")

    print("\n| dataset | group | " + " | ".join(COLUMNS) + " |\n|---|---|" + "---|" * len(COLUMNS))
    for name, result in report["datasets"].items():
        for group, values in result["metrics"].items():
            cells = [format_value(key, values.get(key)) for key in COLUMNS]
            print(f"| {name} | {group} | " + " | ".join(cells) + " |")
    print(f"\nMetrics and rows: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
