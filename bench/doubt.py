"""Sweep the reader's doubt thresholds (qa.decision) over recorded `qa eval` reports, by replay.

    .venv/bin/python bench/doubt.py REPORT.json... [--doubtful 0.25,0.35,none] [--sure 0.45,0.55,none]

Each report must record the reader's doubt (`qa eval` since the doubt was added: the "doubt" of
each row). For every combination of DOUBTFUL (an answer the reader was this likely to decline
counts as declined; "none": never), SURE_NOT_FOUND (a NOT FOUND this sure is final) and
DOUBT_ABSTAINS (a doubtful answer declined outright, or left to the evidence), prints each
report's metrics as `bench/replay.py` computes them: the answers the current code would write
with those thresholds, without running the reader.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import replay as replaying  # noqa: E402

import qa.decision  # noqa: E402


def thresholds(text: str) -> list[float]:
    """'0.25,none' -> [0.25, inf]: "none" is a threshold never reached."""
    return [float("inf") if t.strip() == "none" else float(t) for t in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+")
    parser.add_argument("--doubtful", default="0.25,0.35,0.45,none")
    parser.add_argument("--sure", default="0.45,0.55,0.65,none")
    args = parser.parse_args(argv)
    grid = list(itertools.product(thresholds(args.doubtful), thresholds(args.sure), (False, True)))
    for path in args.reports:
        replay = replaying.Replay(json.loads(path.read_text(encoding="utf-8")))
        if replay.differ:
            print(f"{path}: refused, recorded with other settings: {', '.join(replay.differ)}", file=sys.stderr)
            return 2
        if all(row.get("doubt") is None for row in replay.report["rows"]):
            print(f"{path}: refused, its rows record no doubt (made before it was recorded)", file=sys.stderr)
            return 2
        print(f"{path}")
        print(f"{'doubtful':>9} {'sure':>6} {'abstains':>9} " + " ".join(f"{k[:12]:>12}" for k in replay.keys)
              + "  answers changed")
        for doubtful, sure, abstains in grid:
            if doubtful == float("inf") and abstains:
                continue  # nothing is doubtful: the same as without
            qa.decision.DOUBTFUL, qa.decision.SURE_NOT_FOUND, qa.decision.DOUBT_ABSTAINS = doubtful, sure, abstains
            outcomes, changed = [], []
            for row, new, _ in replay.rows():
                outcomes.append(replay.judged(new))
                if new["answer"] != row["answer"]:
                    changed.append(row["id"])
            metrics = replay.summary(outcomes)
            print(f"{doubtful:>9} {sure:>6} {abstains!s:>9} "
                  + " ".join(f"{metrics.get(k, float('nan')):>12.3f}" for k in replay.keys)
                  + f"  {len(changed)}: {','.join(changed)[:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
