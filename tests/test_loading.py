import pytest

from qa.documents import html_text
from qa.errors import CorpusError
from qa.loading import BUNDLED, bundled_document, corpus_hash, load_documents, make_document


def test_bundled_article_loads_as_french():
    doc = bundled_document()
    assert doc.language == "fr"
    assert "Qwen" in doc.text
    assert load_documents([])[0].doc_id == doc.doc_id == load_documents([BUNDLED])[0].doc_id


def test_folder_is_expanded_to_text_and_markdown_files(tmp_path):
    (tmp_path / "a.txt").write_text("Premier document en français, assez long.", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# Second\nAn English document.", encoding="utf-8")
    (tmp_path / "c.bin").write_bytes(b"\x00\x01")
    docs = load_documents([tmp_path])
    assert [d.source for d in docs] == ["a.txt", "b.md"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("latin1.txt", "Café déjà".encode("latin-1"), "not UTF-8"),
        ("empty.txt", b"   \n", "empty"),
        ("doc.pdfx", b"hello", "unsupported file type"),
    ],
)
def test_unusable_files_raise_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        load_documents([path])


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_documents([tmp_path / "nope.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no"):
        load_documents([tmp_path / "empty"])


def test_document_ids_and_corpus_hash_follow_the_text():
    a = make_document("x.txt", "Texte un.")
    assert a.doc_id == make_document("x.txt", "Texte un.").doc_id
    b = make_document("x.txt", "Texte deux.")
    assert a.doc_id != b.doc_id
    assert corpus_hash([a]) != corpus_hash([b])
    assert make_document("x.txt", "a\r\nb").text == "a\nb"


def test_html_is_read_as_text_without_markup(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>T</title><script>alert(1)</script></head>"
                    "<body><p>Qwen est un modèle d’Alibaba.</p></body></html>", encoding="utf-8")
    [doc] = load_documents([tmp_path])
    assert "Qwen est un modèle d’Alibaba." in doc.text
    assert "alert" not in doc.text and "<p>" not in doc.text


def test_a_file_that_is_not_what_its_name_says_is_refused(tmp_path):
    fake = tmp_path / "report.pdf"
    fake.write_text("not a pdf at all", encoding="utf-8")
    with pytest.raises(CorpusError, match="report.pdf"):
        load_documents([fake])


def test_html_elements_hidden_by_their_attributes_are_dropped_with_what_they_nest():
    page = ('<p>Vu.</p><div style="display: none"><div>caché</div><p>caché</p></div><p>Vu aussi.</p>'
            '<section hidden><h2>caché</h2></section><ul><li hidden>caché<li>item</li></ul>'
            '<span style="visibility:hidden">caché</span><img hidden src=x>Fin.')
    assert html_text(page) == "Vu.\nVu aussi.\nitem\nFin."
