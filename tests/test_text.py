import pytest

from qa.text import anchors, normalize, numbers, split_sentences, tokenize


def test_tokenize_folds_stems_and_drops_stop_words():
    assert tokenize("Les modèles dérivés de l’IA", "fr") == ["model", "deriv", "ia"]
    assert tokenize("The derived models", "en") == ["deriv", "model"]


def test_numbers_ignore_thousands_separators():
    assert numbers("100 000") == numbers("100,000") == numbers("100\u202f000") == {"100000"}
    assert numbers("le 14e plan en 2025") == {"14", "2025"}


@pytest.mark.parametrize("written", ["100 000", "100,000", "100, 000", "100000", "100k", "100 thousand",
                                     "plus de 100 000", "100 mille"])
def test_a_figure_matches_whatever_its_format(written):
    assert "100000" in numbers(f"Qwen compte {written} modèles dérivés.")


@pytest.mark.parametrize("written,value", [("1,5 million", "1500000"), ("1.5 million", "1500000"),
                                           ("2 milliards", "2000000000"), ("2 billion", "2000000000")])
def test_a_scaled_figure_is_read_as_its_value(written, value):
    assert numbers(written) == {value}


@pytest.mark.parametrize("written,value", [
    ("quatre", "4"), ("four", "4"), ("huit", "8"), ("nine", "9"), ("dix-huit", "18"), ("vingt et un", "21"),
    ("quatre-vingt-dix", "90"), ("soixante-dix", "70"), ("two hundred and five", "205"), ("deux millions", "2000000"),
])
def test_a_figure_written_in_words_is_its_digits(written, value):
    assert numbers(f"Le Land a {written} représentants.") == {value}


@pytest.mark.parametrize("text", ["un seul club", "one of them", "30 pour cent", "30 per cent"])
def test_articles_and_percent_are_not_numbers_in_words(text):
    assert numbers(text) <= {"30"}


def test_anchors_are_names_and_figures_not_the_first_word():
    assert anchors("Alibaba developed Qwen in 2023.") == {"qwen", "2023"}


@pytest.mark.parametrize(("text", "expected"), [
    ("L’État", "l'etat"),
    ("100 000 modèles", "100000 modeles"),
    ("100,000 models", "100000 models"),
    ("100\u202f000 et 100\u00a0000", "100000 et 100000"),
    ("1 234 567", "1234567"),
    ("2,5 %", "2,5 %"),
    ("en 2024", "en 2024"),
    ("  deux\n\tlignes  ", "deux lignes"),
])
def test_normalize_folds_text_and_joins_number_groups(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_lines_are_sentence_boundaries():
    text = "Un titre sans point\nLe premier paragraphe commence ici. Il continue."
    spans = split_sentences(text, "fr")
    assert [text[s:e] for s, e in spans] == ["Un titre sans point", "Le premier paragraphe commence ici.",
                                             "Il continue."]
