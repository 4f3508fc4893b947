"""Concurrent visitors (issue 18, part 4), reduced: `bench/load.py` with 4 visitors asking 2
questions each (extractive style, to keep it short) while the first uploads a 20-page PDF and
the last checks it can't see that upload; and two app processes on one PostgreSQL library, where an
upload through one is answered from through the other. The full runs (8 or 32 visitors, the
direct style) are the commands in docs/reliability.md#concurrent-visitors."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_four_simultaneous_visitors_get_their_own_right_answers_and_the_server_stays_up(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from bench.load import run

    figures = run(visitors=4, per_visitor=2, pages=20, style="extractive", work=tmp_path)
    details = [a for v in figures["visitors_detail"] for a in v.get("answers", [])]
    assert figures["errors"] == 0, figures["visitors_detail"]
    assert figures["answers"] == figures["expected_answers"] == 10
    assert figures["own_conversation"] == figures["answers"], details
    assert figures["correct"] == figures["answers"], details
    assert figures["pdf_not_in_others_libraries"] and figures["upload_s"] is not None
    assert figures["server_up_after"] and figures["peak_rss_mb"] > 0


@pytest.mark.scaleout
def test_two_app_processes_on_one_postgresql_library_share_an_upload(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from bench.load import run

    figures = run(visitors=2, per_visitor=1, pages=5, style="extractive", work=tmp_path, store="postgresql",
                  processes=2, library="shared")
    details = [a for v in figures["visitors_detail"] for a in v.get("answers", [])]
    assert figures["errors"] == 0, figures["visitors_detail"]
    assert figures["answers"] == figures["expected_answers"] == 4
    assert [p["answers"] for p in figures["processes_detail"]] == [2, 2]  # the uploader's, then the other's
    assert figures["own_conversation"] == figures["correct"] == figures["answers"], details
    assert figures["pdf_found_by_others"]  # uploaded through process 0, answered through process 1
    assert figures["server_up_after"] and figures["postgres"]["peak_rss_mb"] > 0
