"""Replay recorded `qa eval` answers through the current answer checks, without the reader.

    .venv/bin/python bench/replay.py REPORT.json [--testset tests/data/testset.jsonl] [--ids fr-002,en-016]

REPORT.json: a `qa eval` report of the project test set (judged against --testset) or of a
SQuAD-format set (its questions and benchmark index are read from the report's config).

The direct style's reply depends on the model's draft (recorded in each row as "draft") and on
what the pipeline does with it: the claim checks, the fallback quote, the near-miss rule. When
only that second part changes, feeding each recorded draft back in place of the model gives the
answers the changed code writes, in seconds instead of a 12-minute run. Prompts other than the
reader's (translations of a quoted sentence) still go to the real model, which is greedy, so
they repeat the recorded run's. Only valid while the reader's prompt, the retrieval and the
settings are those of the recorded run (same commit for qa/reader.py, same index): the tool
refuses a report whose settings differ from the current ones (set them back with QA_* variables,
e.g. QA_MAX_NEW_TOKENS=64), and names the questions whose retrieved passages moved.

Prints each question whose judgement changes, then the metrics before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.evaluation import document_texts, failure_reason, judge  # noqa: E402
from qa.generation import make_generator  # noqa: E402
from qa.index import load_index  # noqa: E402
from qa.metrics import summarize  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.reader import NOT_FOUND, SYSTEM  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.squad import read_squad, score_row, squad_failure, squad_summary  # noqa: E402
from qa.testset import load_testset  # noqa: E402
from qa.translations import TranslationMemory  # noqa: E402

TESTSET = ROOT / "tests/data/testset.jsonl"
SAME = ("embedder", "evidence_embedder", "llm", "top_k", "chunk_size", "chunk_overlap", "answer_style",
        "max_new_tokens")


class ReplayGenerator:
    """The reader's recorded draft for the reader's prompt; the real model for anything else."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.draft = ""
        self.doubt: float | None = None
        self.name = settings.llm
        self._real = None

    def real(self):
        if self._real is None:
            s = self.settings
            self._real = make_generator(s.llm, s.cache_dir, threads=s.threads, engine=s.engine)
            if hasattr(self._real, "load"):
                self._real.load()
        return self._real

    def stream(self, messages, max_new_tokens: int, prefix: str = ""):
        if messages and messages[0].get("content") == SYSTEM:
            # as many tokens as the model spent on it, so a reply cut by the budget reads as cut
            count = getattr(self.real(), "count_tokens", None)
            self.last = {"new_tokens": count(self.draft) if count else 0}
            if self.doubt is not None:  # the recorded chance of NOT FOUND stands for the first choices
                self.last["first_choices"] = [(NOT_FOUND, self.doubt)]
            yield self.draft
            return
        real = self.real()
        yield from real.stream(messages, max_new_tokens, prefix=prefix)
        self.last = getattr(real, "last", {})  # the second read's tokens and first choices, not the draft's


def judging(report: dict, chunks=None, testset: Path = TESTSET):
    """(judge a row, failure reason of a judged row, summary of judged rows, metric keys) for a
    report's rows, as `qa eval` judged them: a SQuAD-format set's by its questions, the test set's
    by its items, whose evidence is found in the index's `chunks`."""
    if report["config"].get("kind") == "squad":
        questions = {q.id: q for q in read_squad(ROOT / report["config"]["testset"]).questions}
        return (lambda row: score_row(row, questions[row["id"]]), squad_failure, squad_summary,
                ("answer_contains_gold", "f1", "abstention_recall", "false_abstention", "language_match",
                 "own_words"))
    items = {i.id: i for i in load_testset(testset, document_texts(chunks))}
    return (lambda row: judge(row, items[row["id"]]), failure_reason, summarize,
            ("answer_correct", "correct_and_cited", "citation_precision", "abstention_recall",
             "false_abstention", "language_match", "own_words"))


class Replay:
    """A recorded report's rows, asked again of the current code with their recorded drafts."""

    def __init__(self, report: dict, testset: Path = TESTSET) -> None:
        self.report = report
        self.settings = Settings.from_env()
        recorded = report["config"]["settings"]
        self.differ = [k for k in SAME if recorded.get(k) != getattr(self.settings, k)]
        self.generator = ReplayGenerator(self.settings)
        # a run with the translations `qa translate` prepared read them in retrieval: so does its replay
        unprepared = report["config"].get("translations", {}).get("mode", "none") == "none"
        self.squad = report["config"].get("kind") == "squad"
        index = load_index(Path(report["config"]["corpus"]["index_dir"])) if self.squad else None
        self.pipeline = Pipeline(settings=self.settings, generator=self.generator, index=index,
                                 translations=TranslationMemory(None) if unprepared else None)
        if not self.squad:
            self.pipeline.load()
        self.judged, self.why, self.summary, self.keys = judging(
            report, None if self.squad else self.pipeline.index.chunks, testset)

    def rows(self, wanted: set[str] = frozenset()) -> Iterator[tuple[dict, dict, bool]]:
        """(recorded row, replayed row, whether its retrieved passages moved) for each row."""
        self.pipeline.load()
        for row in self.report["rows"]:
            if wanted and row["id"] not in wanted:
                continue
            self.generator.draft = row.get("draft") or ""
            self.generator.doubt = row.get("doubt")
            answer = self.pipeline.ask(row["question"])
            new = {**row, **answer.to_json(), "id": row["id"]}
            moved = [p["chunk_id"] for p in new["passages"]] != [p["chunk_id"] for p in row["passages"]]
            yield row, new, moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--testset", type=Path, default=TESTSET)
    parser.add_argument("--ids", default="", help="comma-separated ids to replay (default: all)")
    parser.add_argument("--json", type=Path, help="write the replayed rows here")
    args = parser.parse_args(argv)

    replay = Replay(json.loads(args.report.read_text(encoding="utf-8")), args.testset)
    if replay.differ:
        recorded = replay.report["config"]["settings"]
        print("refused: the report was made with other settings: "
              + ", ".join(f"{k}={recorded.get(k)!r}" for k in replay.differ), file=sys.stderr)
        return 2
    before, after, rows, moved = [], [], [], []
    for row, new, was_moved in replay.rows(set(filter(None, args.ids.split(",")))):
        if was_moved:
            moved.append(row["id"])
        old_outcome, new_outcome = replay.judged(row), replay.judged(new)
        before.append(old_outcome)
        after.append(new_outcome)
        rows.append(new)
        old_why, new_why = replay.why(old_outcome), replay.why(new_outcome)
        if old_why != new_why or row["answer"] != new["answer"]:
            print(f"{row['id']}: {old_why or 'ok'} -> {new_why or 'ok'}")
            print(f"    was: {row['answer'][:160]}")
            print(f"    now: {new['answer'][:160]}")
    b, a = replay.summary(before), replay.summary(after)
    if moved:
        print(f"warning: {len(moved)} question(s) retrieved other passages than when recorded (retrieval or index "
              f"changed), so their replays don't measure the checks alone: {', '.join(moved[:10])}")
    print(f"{'metric':<20} {'recorded':>9} {'replayed':>9}")
    for key in replay.keys:
        print(f"{key:<20} {b.get(key, float('nan')):>9.3f} {a.get(key, float('nan')):>9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"config": {**replay.report["config"], "replayed": str(args.report)},
                                         "rows": rows}, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
