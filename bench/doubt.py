"""Sweep the reader's sure-NOT-FOUND threshold (qa.decision) over recorded `qa eval` reports, by replay.

    .venv/bin/python bench/doubt.py REPORT.json... [--sure 0.45,0.55,none]

Each report must record the reader's doubt (the "doubt" of each row, written by `qa eval` since it
was added). For each SURE_NOT_FOUND ("none": a NOT FOUND is never final, the behaviour before),
prints each report's metrics as `bench/replay.py` computes them: the answers the current code
would write with that threshold, without running the reader.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import replay as replaying  # noqa: E402

import qa.decision  # noqa: E402


def thresholds(text: str) -> list[float]:
    """'0.55,none' -> [0.55, inf]: "none" is a threshold never reached.

    >>> thresholds("0.55,none")
    [0.55, inf]
    """
    try:
        return [float("inf") if t.strip() == "none" else float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers or none, separated by commas") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+")
    parser.add_argument("--sure", type=thresholds, default=thresholds("0.45,0.55,0.65,none"))
    args = parser.parse_args(argv)
    for path in args.reports:
        replay = replaying.Replay(json.loads(path.read_text(encoding="utf-8")))
        if replay.differ:
            print(f"{path}: refused, recorded with other settings: {', '.join(replay.differ)}", file=sys.stderr)
            return 2
        if all(row.get("doubt") is None for row in replay.report["rows"]):
            print(f"{path}: refused, its rows record no doubt (made before it was recorded)", file=sys.stderr)
            return 2
        print(f"{path}")
        print(f"{'sure':>6} " + " ".join(f"{k[:12]:>12}" for k in replay.keys) + "  answers changed")
        for sure in args.sure:
            qa.decision.SURE_NOT_FOUND = sure
            outcomes, changed = [], []
            for row, new, _ in replay.rows():
                outcomes.append(replay.judged(new))
                if new["answer"] != row["answer"]:
                    changed.append(row["id"])
            metrics = replay.summary(outcomes)
            print(f"{sure:>6} " + " ".join(f"{metrics.get(k, float('nan')):>12.3f}" for k in replay.keys)
                  + f"  {len(changed)}: {','.join(changed)[:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
