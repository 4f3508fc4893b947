"""CI quality gate: the default offline stack on the project's test set.

Thresholds are the figures measured on this machine (see docs/quality.md) minus a margin, so
a regression in retrieval, answers, citations or abstention turns CI red. The test set was
written for the article by hand; the pipeline never reads it. Reports go to $QA_ARTIFACTS
(default: a temporary folder) for inspection.
"""

import os
from pathlib import Path

import pytest

from qa.measure import evaluate

pytestmark = pytest.mark.slow
TESTSET = Path(__file__).parent / "data" / "testset.jsonl"

# Measured with no translation remembered, e5 index (the default since 2026-12-01): recall@1 0.797,
# recall@5 0.969, MRR 0.861 (hybrid); dense alone 0.791 MRR, BM25 alone 0.621. (USE: 0.844 /
# 0.938 / 0.887, dense 0.701: e5 ranks English questions' passages second more often, and first
# in five more often.)
RETRIEVAL_FLOORS = {"recall@1": 0.74, "recall@5": 0.92, "mrr": 0.80}
# With every sentence translated (as setup leaves it; 2026-12-01, e5, this machine's memory):
# recall@1 0.859, recall@5 0.953, MRR 0.894; dense alone 0.791 MRR, BM25 alone 0.890 (it reads
# the English questions' French passages through the translations too, docs/quality.md). The
# figure depends on the translations the setup's model wrote (recall@5 was 0.969 with an earlier
# memory), hence recall@5's floor one question below.
PREPARED_RETRIEVAL_FLOORS = {"recall@1": 0.84, "recall@5": 0.93, "mrr": 0.88}
# Measured 2026-12-02 by this test (docs/quality.md, *The second read*), the default direct style
# with the 1.5B reader, e5 index and USE evidence, nothing translated, 2 threads; with the second
# read: answer 0.766, correct and cited 0.750, citation precision 0.891, abstention recall 1.000,
# language match 1.000, false abstention 0.094, the gold stated outside quotes 0.656, median
# answer 16 words. Before it (2026-12-01, the night's code): 0.781, 0.766, 0.891, 1.000, 1.000,
# 0.094, 0.562, 25. On an AVX2-only EPYC with the second read's NOT FOUND declining and answers
# worded as the question read again (2026-12-02): 0.766, 0.750, 0.892, 0.938, 1.000, 0.078, 0.688, 16.
# With country names read across languages (same machine): 0.781, 0.766, 0.894, 0.938, 1.000, 0.062,
# 0.703, 16. With a "not" kept and yes-or-no questions left to the evidence (same machine, commit
# 1305e6e): 0.797, 0.781, 0.882, 0.938, 1.000, 0.047, 0.703, 16.
# Floors: about 4-5 questions below (the drafts, greedy, differ with the CPU and thread count: the
# old floors, 4 below, left one question of margin on another CPU);
# abstention 3 of its 16 questions below.
ANSWER_FLOORS = {
    "answer_correct": 0.70,
    "correct_and_cited": 0.69,
    "citation_precision": 0.82,
    "abstention_recall": 0.81,
    "language_match": 0.94,
    "own_words": 0.58,
}
ANSWER_WORDS_CEILING = 30
FALSE_ABSTENTION_CEILING = 0.18


def artifacts(tmp_path: Path, name: str) -> Path:
    root = Path(os.environ.get("QA_ARTIFACTS", tmp_path))
    return root / name


def retrieval_report(settings, tmp_path: Path, translations: str, floors: dict, components: tuple) -> None:
    """Retrieval over the test set with `translations`: the fused ranking above `floors` and at
    least as good (MRR) as each of `components` alone."""
    report = evaluate(TESTSET, artifacts(tmp_path, f"eval-retrieval-{translations}"), settings, answers=False,
                      progress=False, translations=translations)
    hybrid = report["baselines"]["hybrid"]["all"]
    for key, floor in floors.items():
        assert hybrid[key] >= floor, f"hybrid {key} {hybrid[key]:.3f} fell below {floor}"
    for component in components:
        assert hybrid["mrr"] >= report["baselines"][component]["all"]["mrr"], component


def test_retrieval_on_the_project_test_set(real_settings, tmp_path):
    # with no translation, fusion must beat each signal alone
    retrieval_report(real_settings, tmp_path, "none", RETRIEVAL_FLOORS, ("dense", "bm25"))


def test_retrieval_with_the_translations_setup_prepares(real_settings, tmp_path):
    retrieval_report(real_settings, tmp_path, "prepared", PREPARED_RETRIEVAL_FLOORS, ("dense",))


def test_answers_on_the_project_test_set(real_pipeline, tmp_path):
    report = evaluate(TESTSET, artifacts(tmp_path, "eval-answers"), real_pipeline.settings,
                      pipeline=real_pipeline, progress=False, translations="none")
    assert report["config"]["translations"]["mode"] == "none"
    overall = report["metrics"]["all"]
    for key, floor in ANSWER_FLOORS.items():
        assert overall[key] >= floor, f"{key} {overall[key]:.3f} fell below {floor}"
    assert overall["false_abstention"] <= FALSE_ABSTENTION_CEILING
    assert overall["answer_words_median"] <= ANSWER_WORDS_CEILING
