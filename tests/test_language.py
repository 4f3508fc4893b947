import pytest

from qa.language import answer_language, detect_language


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Combien de modèles dérivés ont été construits sur Qwen ?", "fr"),
        ("When was the US AI Action Plan published?", "en"),
        ("Quel salaire exact DeepSeek propose-t-il ?", "fr"),
        ("Which Chinese firms developed Qwen and Hunyuan?", "en"),
        ("c koi le nom du modele d'alibaba ?", "fr"),
    ],
)
def test_questions_are_detected_in_their_language(text, expected):
    assert detect_language(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "123 ?", "!!"])
def test_no_letters_gives_the_default(text):
    assert detect_language(text, default="fr") == "fr"
    assert detect_language(text, default="en") == "en"


@pytest.mark.parametrize("answer,asked,expected", [
    ("Kimi K2 de Moonshot AI, MiniMax M1, Qwen 3, DeepSeek R1 [1].", "fr", "fr"),  # names joined by French
    ("Kimi K2 of Moonshot AI and MiniMax M1 [1].", "fr", "en"),  # joined by English words
    ("DeepSeek [2].", "en", "en"),
    ("Les tensions géopolitiques pourraient entraver la participation [1].", "en", "fr"),
])
def test_an_answer_of_names_is_in_the_language_of_its_small_words(answer, asked, expected):
    assert answer_language(answer, asked) == expected
