import pytest

from qa.chunking import chunk_document
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
