"""Evidence sentences: scored against the question, deduplicated, the runner-up kept when close."""

import pytest

import qa.evidence
from qa.evidence import (
    OTHER_PASSAGE_MARGIN,
    RUNNER_UP_MARGIN,
    Evidence,
    asks_why,
    passages_of_best,
    rank_sentences,
    same_documents,
    select,
    states_cause,
    with_parts,
)
from qa.types import Chunk, Passage
from tests.fakes import FakeEmbedder


def passage(n: int, text: str, language: str = "fr", start: int = 0) -> Passage:
    chunk = Chunk(f"d#{start}", "d", "d.txt", start, start + len(text), text, language)
    return Passage(n, chunk, 1.0 / n, 0.5)


def rank(question: str, language: str, passages: list[Passage]) -> list[Evidence]:
    embedder = FakeEmbedder()
    return rank_sentences(question, language, passages,
                          lambda texts: embedder.embed_batch(texts, "query"),
                          lambda texts: embedder.embed_batch(texts, "passage"))


def test_the_sentence_holding_the_question_s_words_comes_first():
    p = passage(1, "La Chine investit. Alibaba a publié Qwen en 2023. Le temps est doux.")
    ranked = rank("Qui a publié Qwen ?", "fr", [p])
    assert ranked[0].text == "Alibaba a publié Qwen en 2023."
    assert [e.score for e in ranked] == sorted((e.score for e in ranked), reverse=True)
    assert p.chunk.text[ranked[0].start:ranked[0].end] == ranked[0].text


def test_a_sentence_repeated_by_overlapping_passages_counts_once_in_the_better_passage():
    first = passage(1, "Qwen compte 100 000 modèles. Fin.")
    second = passage(2, "Qwen compte 100 000 modèles. Autre chose.", start=0)
    ranked = rank("Combien de modèles compte Qwen ?", "fr", [second, first])
    texts = [e.text for e in ranked]
    assert texts.count("Qwen compte 100 000 modèles.") == 1
    assert next(e for e in ranked if e.text.startswith("Qwen")).passage.n == 1


def test_across_languages_names_and_numbers_still_count():
    p = passage(1, "Le plan américain est sorti. Hunyuan vient de Tencent.")
    ranked = rank("Which company made Hunyuan?", "en", [p])
    assert ranked[0].text == "Hunyuan vient de Tencent."


def test_a_rare_question_word_counts_more_than_a_common_one():
    # each sentence shares one word with the question and is as long as the others: only the
    # words' rarity among the sentences can tell them apart ("zorglub" is in three of four)
    p = passage(1, "Zorglub kromp vitalis. Zorglub frimas nectar. Zorglub plomb ivoire. Quartz plomb ivoire.")
    ranked = rank("Zorglub quartz ?", "fr", [p])
    assert ranked[0].text == "Quartz plomb ivoire."
    assert ranked[0].score > ranked[1].score


def test_no_passages_no_evidence():
    assert rank("Qui ?", "fr", []) == [] and select([]) == []


@pytest.mark.parametrize("second_score,kept", [(0.96 - RUNNER_UP_MARGIN, 2), (0.94 - RUNNER_UP_MARGIN, 1)])
def test_the_runner_up_joins_only_when_close(second_score, kept):
    p = passage(1, "A. B.")
    chosen = select([Evidence(p, 3, 5, 0.95), Evidence(p, 0, 2, second_score)])
    assert len(chosen) == kept and chosen[-1].text == "B."  # reading order


@pytest.mark.parametrize("second_score,kept", [(0.96 - OTHER_PASSAGE_MARGIN, 2), (0.94 - OTHER_PASSAGE_MARGIN, 1)])
def test_a_runner_up_from_another_passage_must_be_closer(second_score, kept):
    best, other = passage(1, "A. B."), passage(2, "C. D.")
    assert OTHER_PASSAGE_MARGIN < RUNNER_UP_MARGIN
    chosen = select([Evidence(best, 3, 5, 0.95), Evidence(other, 0, 2, second_score)])
    assert [e.passage.n for e in chosen] == [1, 2][:kept]


def test_each_half_of_a_two_part_question_gets_its_sentence():
    p = passage(1, "Alibaba a publié Qwen en 2023. Le temps est doux. Tencent a lancé Hunyuan à Shenzhen.")
    q = passage(2, "Baidu développe ERNIE.")
    question = "Qui a publié Qwen, et où Tencent a-t-il lancé Hunyuan ?"
    embedder = FakeEmbedder()
    query, passages_ = (lambda t: embedder.embed_batch(t, "query")), (lambda t: embedder.embed_batch(t, "passage"))
    chosen = select(rank("Qui a publié Qwen ?", "fr", [p, q]))
    assert [e.text for e in chosen] == ["Alibaba a publié Qwen en 2023."]
    both = with_parts(question, "fr", [p, q], chosen, query, passages_)
    assert [e.text for e in both] == ["Alibaba a publié Qwen en 2023.", "Tencent a lancé Hunyuan à Shenzhen."]
    assert with_parts("Qui a publié Qwen ?", "fr", [p, q], chosen, query, passages_) == chosen  # one question


def test_a_part_already_quoted_is_not_added_twice():
    p = passage(1, "Alibaba a publié Qwen en 2023 et Tencent a lancé Hunyuan à Shenzhen. Le temps est doux.")
    embedder = FakeEmbedder()
    query, passages_ = (lambda t: embedder.embed_batch(t, "query")), (lambda t: embedder.embed_batch(t, "passage"))
    question = "Qui a publié Qwen, et où Tencent a-t-il lancé Hunyuan ?"
    chosen = select(rank(question, "fr", [p]))[:1]
    assert len(with_parts(question, "fr", [p], chosen, query, passages_)) == 1


def test_a_question_in_the_document_is_not_chosen_as_evidence():
    p = passage(1, "Qui est concerné par la médiation ? Les parents qui veulent modifier la garde de l'enfant.")
    ranked = rank("Qui est concerné par la médiation ?", "fr", [p])
    assert ranked[0].text.endswith("?")  # the heading matches the question best...
    assert [e.text for e in select(ranked)] == ["Les parents qui veulent modifier la garde de l'enfant."]
    assert [e.text for e in select(ranked[:1])] == [ranked[0].text]  # ...and is kept when it is all there is


@pytest.mark.parametrize("question,language", [
    ("Why is China pushing open-source AI?", "en"),
    ("How come the line was delayed?", "en"),
    ("What are the reasons for the delay?", "en"),
    ("What partly drove the change in the US attitude?", "en"),
    ("Pourquoi la Chine mise-t-elle sur l'IA open source ?", "fr"),
    ("Pour quelle raison la ligne a-t-elle été retardée ?", "fr"),
    ("Quelles sont les raisons du retard ?", "fr"),
    ("Qu'est-ce qui pousse la Chine vers l'open source ?", "fr"),
])
def test_a_question_asking_for_a_cause_or_a_purpose_is_a_why_question(question, language):
    assert asks_why(question, language)


@pytest.mark.parametrize("question,language", [
    ("Who founded Moonshot AI?", "en"),
    ("What does open-sourcing help China overcome?", "en"),
    ("Quand le plan d'action a-t-il été publié ?", "fr"),
    ("Combien de modèles dérivés compte Qwen ?", "fr"),
])
def test_other_questions_are_not(question, language):
    assert not asks_why(question, language)


@pytest.mark.parametrize("sentence,language,cause", [
    ("Le pivot de la Chine est une réponse directe aux restrictions américaines.", "fr", True),
    ("Cette impulsion est conçue pour contrer les sanctions américaines.", "fr", True),
    ("Poussés par un besoin d'autonomie, les modèles gagnent du terrain.", "fr", True),
    ("The council approved it because of traffic congestion.", "en", True),
    ("The plan aims to build local communities.", "en", True),
    ("Qwen compte plus de 100 000 modèles dérivés.", "fr", False),
    ("The line will open in 2027.", "en", False),
])
def test_a_sentence_states_a_cause_in_its_own_language(sentence, language, cause):
    assert states_cause(sentence, language) is cause


def test_a_why_question_prefers_the_sentence_giving_the_reason(monkeypatch):
    monkeypatch.setattr(qa.evidence, "CAUSE_WEIGHT", 0.2)  # off by default: docs/quality.md#why-questions
    # the two sentences hold the same question words; only the second says why
    p = passage(1, "La Chine adopte l'IA open source depuis 2023. La Chine adopte l'IA open source en réponse aux "
                   "sanctions.")
    assert rank("Pourquoi la Chine adopte-t-elle l'IA open source ?", "fr", [p])[0].text.endswith("aux sanctions.")
    when = {e.text: e.score for e in rank("Quand la Chine adopte-t-elle l'IA open source ?", "fr", [p])}
    monkeypatch.setattr(qa.evidence, "CAUSE_WEIGHT", 0.0)
    assert when == {e.text: e.score for e in rank("Quand la Chine adopte-t-elle l'IA open source ?", "fr", [p])}
    # asked something else, the cue earns nothing


def test_an_english_why_question_finds_the_reason_in_a_french_sentence(monkeypatch):
    monkeypatch.setattr(qa.evidence, "CAUSE_WEIGHT", 0.2)
    p = passage(1, "Le pivot de la Chine vers Qwen date de 2023. Le pivot de la Chine vers Qwen est une réponse "
                   "directe aux sanctions.")
    assert "réponse" in rank("Why did China pivot to Qwen?", "en", [p])[0].text


def test_the_passages_of_the_best_sentences_are_kept_in_retrieval_order_and_numbered_again():
    passages = [passage(n, f"Phrase {n}.", start=10 * n) for n in range(1, 9)]
    ranked = [Evidence(passages[n - 1], 0, 9, score) for n, score in [(6, 0.9), (2, 0.8), (6, 0.7), (8, 0.6),
                                                                      (1, 0.5), (3, 0.4)]]
    kept = passages_of_best(ranked, 4)
    assert [p.chunk.text for p in kept] == ["Phrase 1.", "Phrase 2.", "Phrase 6.", "Phrase 8."]
    assert [p.n for p in kept] == [1, 2, 3, 4]
    assert [(p.n, p.chunk.text) for p in passages_of_best(ranked[:1], 4)] == [(1, "Phrase 6.")]


def test_a_why_question_s_extra_passages_come_from_the_documents_already_found():
    def from_doc(n: int, doc: str) -> Passage:
        return Passage(n, Chunk(f"{doc}#{n}", doc, f"{doc}.txt", 0, 2, "A.", "fr"), 1.0 / n, 0.5)

    pool = [from_doc(1, "a"), from_doc(2, "b"), from_doc(3, "c"), from_doc(4, "a"), from_doc(5, "b")]
    assert [p.n for p in same_documents(pool, 2)] == [1, 2, 4, 5]
    assert same_documents(pool[:2], 2) == pool[:2]
