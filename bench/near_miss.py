"""Replay recorded `qa eval` answers with the direct style's near-miss rule applied.

    .venv/bin/python bench/near_miss.py REPORT.json [REPORT.json...]

The rule (`qa.decision.names_everything_asked`) only changes the direct style's fallback: when
the model found nothing (or no claim held up) and the evidence would be quoted, the answer is
declined if the quoted sentences lack a name the question asks about. A quoted answer holds
those sentences in the question's language (translated ones as remembered), so applying the rule
to the recorded answers gives the answers the code with the rule writes, without running the
model again. For each report: which questions flip, and the figures before and after.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.decision import names_everything_asked  # noqa: E402
from qa.pipeline import QUOTE_LEAD, TRANSLATED_LEAD  # noqa: E402

LEADS = tuple(QUOTE_LEAD.values()) + tuple(TRANSLATED_LEAD.values())


def flips(row: dict) -> bool:
    """Whether the rule declines this recorded answer: a fallback quote lacking an asked name."""
    return (not row["abstained"] and row["answer"].startswith(LEADS)
            and not names_everything_asked(row["question"], [row["answer"]]))


def figures(rows: list[dict], flipped: set[str]) -> dict[str, float]:
    def abstained(r):
        return r["abstained"] or r["id"] in flipped

    def correct(r):
        return bool((r.get("judgement") or {}).get("correct")) and r["id"] not in flipped

    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    return {
        "answer_correct": sum(correct(r) for r in answerable) / max(1, len(answerable)),
        "abstention_recall": sum(abstained(r) for r in unanswerable) / len(unanswerable)
        if unanswerable else float("nan"),
        "false_abstention": sum(abstained(r) for r in answerable) / max(1, len(answerable)),
    }


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        flipped = {r["id"] for r in rows if flips(r)}
        before, after = figures(rows, set()), figures(rows, flipped)
        print(f"{path}: {len(rows)} questions, {len(flipped)} declined by the rule")
        for r in rows:
            if r["id"] in flipped:
                kind = "answerable" if r["answerable"] else "unanswerable"
                was = "correct" if (r.get("judgement") or {}).get("correct") else "wrong"
                print(f"  {r['id']} ({kind}, was {was}): {r['question']}")
        for name in before:
            print(f"  {name}: {before[name]:.3f} -> {after[name]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
