"""Recorded `qa eval` answers with the direct style's second-read NOT FOUND rule applied.

    .venv/bin/python bench/second_not_found.py REPORT.json [REPORT.json...]

The rule (`qa.pipeline.SECOND_NOT_FOUND_DECLINES`) only changes the direct style's fallback:
when the second read (`Pipeline._second_read`, the model given only the sentences that would be
quoted) replies NOT FOUND, the answer is declined instead of quoting them. Each row records that
reply ("second"), so declining the rows whose second read said NOT FOUND gives the answers the
code with the rule writes, without running the model again; a report made with the rule on is
read as it is. Two forms are scored: every second-read NOT FOUND declines ("any"), or only when
the reader had said NOT FOUND first ("both"). For each report: the questions that flip, and the
figures as recorded and under each form, scored as `qa eval` scores them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.index import load_index  # noqa: E402
from qa.pipeline import ABSTENTION  # noqa: E402
from qa.reader import is_not_found  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay import judging  # noqa: E402

KEYS = {"squad": ("answer_contains_gold", "f1", "own_words", "abstention_recall", "false_abstention"),
        "testset": ("answer_correct", "correct_and_cited", "own_words", "citation_precision",
                    "abstention_recall", "false_abstention")}


def flips(row: dict, form: str) -> bool:
    """Whether the rule in `form` ("any", "both") declines this recorded answer."""
    if row["abstained"] or not is_not_found(row.get("second") or ""):
        return False
    return form == "any" or is_not_found(row.get("draft") or "")


def declined(row: dict) -> dict:
    return {**row, "answer": ABSTENTION[row["language"]], "abstained": True, "citations": []}


def scorer(report: dict):
    """(score rows → metrics, kind) as `qa eval` scored this report (`replay.judging`)."""
    kind = "squad" if report["config"].get("kind") == "squad" else "testset"
    chunks = None if kind == "squad" else load_index(ROOT / report["config"]["settings"]["index_dir"]).chunks
    judged, _, summary, _ = judging(report, chunks)
    return (lambda rows: summary([judged(r) for r in rows])), kind


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        report = json.loads(path.read_text(encoding="utf-8"))
        rows = report["rows"]
        score, kind = scorer(report)
        ran = sum(bool(r.get("second")) for r in rows)
        said = [r for r in rows if flips(r, "any")]
        print(f"{path}: {len(rows)} questions, {ran} second reads, {len(said)} of them NOT FOUND and quoted")
        for r in said:
            kind_of = "answerable" if r["answerable"] else "unanswerable"
            was = ("quote right" if not r.get("failure") else "quote wrong") if r["answerable"] else "answered"
            first = "reader NOT FOUND" if flips(r, "both") else "reader's answer refused"
            print(f"  {r['id']} ({kind_of}, {was}; {first}; doubt {r.get('second_doubt')}): {r['question']}")
        figures = {"recorded": score(rows)}
        for form in ("any", "both"):
            figures[form] = score([declined(r) if flips(r, form) else r for r in rows])
        print("  " + " " * 22 + "".join(f"{name:>10}" for name in figures))
        for key in KEYS[kind]:
            print(f"  {key:22}" + "".join(f"{f[key]:10.3f}" for f in figures.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
