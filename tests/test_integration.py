"""The default offline stack end to end: real packaged models, the bundled article.

These load the real embedder and generator (a few seconds once per session) and generate
answers (a few seconds each): marked slow, and still run in CI.
"""

import json
import subprocess
import sys

import pytest

from qa.text import fold

pytestmark = pytest.mark.slow


def norm(text: str) -> str:
    return fold(text).replace("\u202f", " ").replace("\u00a0", " ")


def supported(answer, needle: str) -> bool:
    return any(needle in norm(c.chunk.text) for c in answer.citations)


def test_french_question_gets_a_short_cited_french_answer_in_the_model_s_words(real_pipeline):
    answer = real_pipeline.ask("Combien de modèles dérivés ont été construits sur Qwen ?")
    assert not answer.abstained
    assert answer.language == "fr"
    assert "100 000" in norm(answer.text) and "«" not in answer.text  # stated, not quoted
    assert len(answer.text.split()) <= 40
    assert supported(answer, "100 000 modeles derives")
    assert any("100 000" in c.quote for c in answer.citations)  # the evidence, shown as the source
    assert all(f"[{c.n}]" in answer.text for c in answer.citations)


def test_english_question_is_answered_in_english_from_the_french_article(real_pipeline):
    from qa.language import detect_language

    answer = real_pipeline.ask("When was the US AI Action Plan published?")
    assert not answer.abstained
    assert answer.language == "en" and detect_language(answer.text) == "en"
    assert "july" in norm(answer.text) and "2025" in answer.text
    assert supported(answer, "juillet 2025")


def test_the_best_evidence_comes_before_the_model_s_answer(real_pipeline):
    from qa.types import Answer, Preview

    events = list(real_pipeline.stream("Combien de modèles dérivés ont été construits sur Qwen ?"))
    assert isinstance(events[0], Preview) and "100 000" in events[0].citations[0].quote
    assert isinstance(events[-1], Answer) and not events[-1].abstained


@pytest.mark.parametrize("question,refused", [
    # English answers over French evidence: facts kept (the 0.5B translator wrote "gunpowder" for
    # « puces » and "open to criticism" for « actif national critique »)
    ("What US restrictions pushed China toward open-source AI?", ("gunpowder", "firearm")),
    ("How does the US AI Action Plan describe open-source AI?", ("criticism", "open to critic")),
])
def test_english_answers_keep_the_meaning_of_the_french_evidence(real_pipeline, question, refused):
    answer = real_pipeline.ask(question)
    assert not answer.abstained, answer.text
    assert not any(word in norm(answer.text) for word in refused), answer.text


def test_the_extractive_style_still_quotes_the_evidence_verbatim(real_pipeline):
    extractive = real_pipeline.with_settings(real_pipeline.settings.with_(answer_style="extractive"))
    answer = extractive.ask("Combien de modèles dérivés ont été construits sur Qwen ?")
    assert not answer.abstained and "100 000" in norm(answer.text)
    assert all(c.quote in answer.text for c in answer.citations)


def test_the_generative_style_still_answers_with_the_model_s_own_sentence(real_pipeline):
    generative = real_pipeline.with_settings(real_pipeline.settings.with_(answer_style="generative"))
    answer = generative.ask("Combien de modèles dérivés ont été construits sur Qwen ?")
    assert not answer.abstained and "100 000" in norm(answer.text)
    assert answer.text.startswith("D’après les sources,") and "«" not in answer.text


def test_question_the_article_does_not_answer_is_declined_in_french(real_pipeline):
    answer = real_pipeline.ask("Quel salaire exact DeepSeek propose-t-il ?")
    assert answer.abstained
    assert answer.language == "fr" and "ne le dit pas" in answer.text
    assert answer.citations == ()


@pytest.mark.parametrize("question,needle", [
    ("How many derived models have been built on Qwen?", "100 000 modeles derives"),
    ("Which Chinese companies released Qwen, Hunyuan and ERNIE?", "hunyuan de tencent"),
    ("Which platform, created by UC Berkeley researchers, ranks the models?", "lmarena"),
    ("When was the US AI Action Plan published?", "juillet 2025"),
    ("What does the five-year plan emphasize about open source?", "plan quinquennal"),
])
def test_english_questions_find_the_right_french_passage(real_pipeline, question, needle):
    passages = real_pipeline.retriever.retrieve(question, "en", top_k=4)
    assert any(needle in norm(p.chunk.text) for p in passages[:3])


def test_cli_json_with_the_real_stack(real_settings):
    result = subprocess.run(
        [sys.executable, "-m", "qa", "ask", "Combien de modèles dérivés ont été construits sur Qwen ?", "--json",
         "--index-dir", str(real_settings.index_dir)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["language"] == "fr" and not data["abstained"]
    assert "100 000" in norm(data["answer"])
    assert data["models"] == {"embedder": real_settings.embedder, "llm": real_settings.llm,
                              "evidence_embedder": real_settings.evidence_embedder}
    for citation in data["citations"]:
        assert citation["quote"] in citation["text"]


@pytest.mark.parametrize("question,expected", [
    ("Tell me a joke", "outside what the documents cover"),
    ("Quelle est la meilleure recette de ratatouille ?", "sort du sujet des documents"),
])
def test_an_off_topic_question_is_told_so(real_pipeline, question, expected):
    answer = real_pipeline.ask(question)
    assert answer.abstained and expected in answer.text and answer.citations == ()


def test_an_answer_never_drops_the_pages_not(real_pipeline):
    """Over the family-mediation page (« …n'est pas exigée en cas de violences alléguées… »), the
    reader wrote « La médiation est obligatoire en cas de violences… [1] », and every check passed
    it. Whatever the model writes now, the answer never states that mediation is required there."""
    from qa import library
    from qa.documents import read_upload
    from qa.loading import Source

    page = "tests/data/mediation-familiale.md"
    index = library.add(real_pipeline.index, [Source(read_upload(page), page, 1)], real_pipeline.embedder).index
    answer = real_pipeline.with_index(index).ask("La médiation est-elle obligatoire en cas de violences ?")
    said = norm(answer.text)
    assert "n'est pas exigee" in said or "n'est pas obligatoire" in said or answer.abstained, answer.text
    assert "est obligatoire en cas de violences" not in said, answer.text
