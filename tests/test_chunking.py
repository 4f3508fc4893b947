import pytest

from qa.chunking import chunk_document, document_title, indexed_text, passage_header
from qa.loading import bundled_document, make_document
from qa.text import split_sentences


@pytest.mark.parametrize("size,overlap", [(600, 150), (300, 0), (200, 120), (1000, 400)])
def test_chunk_offsets_round_trip_into_the_document(size, overlap):
    doc = bundled_document()
    chunks = chunk_document(doc, size, overlap)
    assert chunks
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()


def test_chunks_cover_every_sentence_of_the_document():
    doc = bundled_document()
    chunks = chunk_document(doc, 400, 100)
    for start, end in split_sentences(doc.text, doc.language):
        assert any(c.start <= start and end <= c.end for c in chunks), doc.text[start:end]


def test_chunks_respect_the_size_unless_a_sentence_is_longer():
    doc = bundled_document()
    sentences = split_sentences(doc.text, doc.language)
    longest = max(e - s for s, e in sentences)
    for chunk in chunk_document(doc, 300, 50):
        assert len(chunk.text) <= max(300, longest)


def test_overlap_repeats_trailing_sentences_within_a_paragraph():
    text = " ".join(f"Phrase numéro {i} sur un sujet assez long pour compter." for i in range(12))
    doc = make_document("p.txt", text)
    chunks = chunk_document(doc, 200, 100)
    assert len(chunks) > 2
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start < before.end  # overlap
        assert after.start > before.start  # progress


def test_chunk_ids_are_deterministic_and_unique():
    doc = bundled_document()
    first = [c.chunk_id for c in chunk_document(doc, 600, 150)]
    again = [c.chunk_id for c in chunk_document(bundled_document(), 600, 150)]
    assert first == again
    assert len(set(first)) == len(first)
    assert all(cid.startswith(doc.doc_id) for cid in first)


def test_a_sentence_longer_than_the_chunk_size_is_cut_at_spaces_into_bounded_passages():
    long = "Mot " * 80 + "fin."
    doc = make_document("l.txt", f"Court. {long} Après.")
    chunks = chunk_document(doc, 100, 0)
    assert all(len(c.text) <= 100 for c in chunks)
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    pieces = [c.text for c in chunks if "Mot" in c.text or "fin." in c.text]
    assert " ".join(pieces).replace("Court. ", "").replace(" Après.", "") == long.strip()


def test_one_enormous_line_without_spaces_gives_passages_of_at_most_the_chunk_size():
    doc = make_document("l.txt", "a" * 10_000)
    chunks = chunk_document(doc, 600, 150)
    assert len(chunks) == 17 and max(len(c.text) for c in chunks) == 600
    assert "".join(c.text for c in chunks) == doc.text


@pytest.mark.parametrize("source,title", [
    ("mediation-familiale.html", "mediation familiale"),  # a user's file: its name in words
    ("rapport_annuel 2024.pdf", "rapport annuel 2024"),
    ("Super_Bowl_50#3", "Super Bowl 50"),  # a SQuAD-format set's paragraph 3 of an article
    ("Washington_D.C.#0", "Washington D.C."),  # an article's dots are no file extension
    ("<i>Terminator 2 : Le Jugement dernier</i>#1", "Terminator 2 : Le Jugement dernier"),  # PIAF
    ('<i><span class="lang-en" lang="en">Moonraker</span></i> (film)#0', "Moonraker (film)"),
])
def test_document_title_is_the_file_name_or_the_article_title_in_words(source, title):
    assert document_title(source) == title


GUIDE = ("# Guide\nCe guide présente les démarches d’un divorce, pas à pas, pour les deux parents.\n"
         "## La médiation familiale\nElle aide les parents à s’entendre. Une séance coûte entre 2 et 131 euros.\n")


def test_a_sectioned_passage_is_indexed_under_its_title_and_section():
    doc = make_document("guide-du-divorce.md", GUIDE)
    chunk = next(c for c in chunk_document(doc, 90, 0) if c.section == "La médiation familiale")
    assert indexed_text(chunk, "title+section") == "guide du divorce — La médiation familiale\n" + chunk.text
    assert indexed_text(chunk, "title") == "guide du divorce\n" + chunk.text
    assert indexed_text(chunk, "") == chunk.text


def test_a_header_never_says_the_same_words_twice():
    doc = make_document("mediation-familiale.md", "# Médiation familiale\nElle aide les parents à s’entendre.")
    (chunk,) = chunk_document(doc, 600, 0)
    assert chunk.section == "Médiation familiale"
    assert passage_header(chunk, "title+section") == "mediation familiale"


def test_an_unknown_header_choice_is_refused_with_the_choices():
    (chunk,) = chunk_document(make_document("a.txt", "Un texte."), 600, 0)
    with pytest.raises(ValueError, match="headers must be one of"):
        indexed_text(chunk, "title+page")


@pytest.mark.parametrize("source", ["guide-du-divorce.md", "Guide_du_divorce#0"])
def test_headers_change_what_is_indexed_never_what_is_quoted(source):
    doc = make_document(source, GUIDE)
    for chunk in chunk_document(doc, 90, 0):  # the passage shown and quoted is the document's own text at its offsets
        assert doc.text[chunk.start : chunk.end] == chunk.text
        indexed = indexed_text(chunk, "title+section")
        assert indexed != chunk.text and indexed.endswith("\n" + chunk.text)
