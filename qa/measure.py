"""`qa eval`: a test set in, a written report out. Our JSONL test set goes through
`qa.evaluation`, a SQuAD-format file through `qa.squad`; this module sits above both, so neither
imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from qa.errors import InputError
from qa.evaluation import evaluate_testset
from qa.pipeline import Pipeline
from qa.report import write_report
from qa.settings import Settings
from qa.squad import evaluate_squad


def evaluate(testset_path: str | Path, out_dir: str | Path, settings: Settings,
             limit: int | None = None, pipeline: Pipeline | None = None, progress: bool = True,
             *, answers: bool = True, seed: int = 0, bench_dir: str | Path | None = None,
             translations: str = "prepared", part: str = "all") -> dict:
    """Measure the system on a test set; write report.json, report.md and plots in `out_dir`.

    `testset_path` is our JSONL test set, or a SQuAD-format `.json` file (then `limit`
    questions are sampled with `seed`, and the file's contexts are indexed in `bench_dir`,
    by default `<index_dir>-bench/<file stem>`). `translations` ("prepared" or "none") is the
    JSONL set's translation memory (`evaluation_memory`); a SQuAD set starts from none. `part`
    ("all", "tuning" or "held-out") restricts a SQuAD set's questions to one part of its split
    by paragraph (`qa.squad.part_questions`); a JSONL set has no parts.
    `answers=False` measures retrieval only, without loading the language model. A given
    `pipeline` must use the same `settings`. Returns the report as written to report.json
    (undefined metrics as None).
    """
    path = Path(testset_path)
    if path.suffix.lower() == ".json":  # SQuAD format; read_squad says so if "data" is missing
        report = evaluate_squad(path, settings, limit=limit, seed=seed, pipeline=pipeline,
                                answers=answers, index_dir=bench_dir, progress=progress, part=part)
    else:
        if part != "all":
            raise InputError(f"--part {part}: only a SQuAD-format file is split into parts, "
                             f"not the test set {path}")
        report = evaluate_testset(path, settings, limit=limit, pipeline=pipeline,
                                  answers=answers, progress=progress, translations=translations)
    return write_report(report, out_dir)
