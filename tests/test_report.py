from __future__ import annotations

import doctest
import json
import math

import pytest

import qa.report as report


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(report)
    assert result.attempted > 0
    assert result.failed == 0


def test_format_table_prints_groups_as_columns() -> None:
    table = report.format_table({"all": {"questions": 4, "recall@1": 0.5, "abstention_recall": None},
                             "fr": {"questions": 2, "recall@1": 1.0,
                                    "abstention_recall": math.nan}})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "all", "fr"]
    assert lines[1].split() == ["questions", "4", "2"]
    assert lines[2].split() == ["recall@1", "0.500", "1.000"]
    assert lines[3].split() == ["abstention", "recall", "–", "–"]


def test_jsonable_makes_strict_json() -> None:
    text = json.dumps(report.jsonable({"x": [math.nan, math.inf, 1.5]}))
    assert json.loads(text, parse_constant=pytest.fail) == {"x": [None, None, 1.5]}
