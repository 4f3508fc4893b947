import pytest

from qa.language import detect_language


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
