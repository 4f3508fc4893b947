"""The project's test set: JSONL, one question per line, checked against the indexed documents.

    {"id": "fr-1", "lang": "fr", "question": "...", "answerable": true,
     "answer_groups": [["100 000", "100000"]], "evidence": ["plus de 100 000 modèles"], "reference": "..."}

`answer_groups`: each group must be matched by one of its alternatives. `evidence`: spans of the
corpus that answer the question (empty when it is unanswerable: such questions count for
abstention only). `load_testset` names every bad line. The metrics are in `qa.metrics`, the run
in `qa.evaluation`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.errors import InputError
from qa.text import normalize
from qa.types import Chunk, Language

LANGUAGES: tuple[Language, ...] = ("fr", "en")
FIELDS = ("id", "lang", "question", "answerable", "answer_groups", "evidence", "reference")
MAX_PROBLEMS_SHOWN = 10


@dataclass(frozen=True)
class TestItem:
    """One question of the test set. `evidence`: spans of the corpus that answer it."""

    __test__ = False  # a dataclass, not a pytest test class

    id: str
    lang: Language
    question: str
    answerable: bool
    answer_groups: tuple[tuple[str, ...], ...]  # each group must be matched by one alternative
    evidence: tuple[str, ...]
    reference: str


def load_testset(path: str | Path, corpus: str | Iterable[str]) -> list[TestItem]:
    """Read and validate a JSONL test set; `corpus` is the text(s) evidence must be found in.

    Raise InputError listing every bad line by number: invalid JSON, missing or mistyped
    field, unknown lang, evidence not in the corpus, duplicate id.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"test set {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"test set {path} can't be read as UTF-8 text: {error}") from None
    haystacks = [normalize(t) for t in ([corpus] if isinstance(corpus, str) else corpus)]
    items: list[TestItem] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item, errors = _parse_item(line, haystacks)
        if item is not None and item.id in first_line:
            errors.append(f"duplicate id {item.id!r} (first on line {first_line[item.id]})")
        if errors:
            problems.append(f"line {number}: {', '.join(errors)}")
        elif item is not None:
            first_line[item.id] = number
            items.append(item)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = (f"; and {len(problems) - MAX_PROBLEMS_SHOWN} more"
                if len(problems) > MAX_PROBLEMS_SHOWN else "")
        raise InputError(f"test set {path} has {len(problems)} bad line(s): {shown}{more}")
    if not items:
        raise InputError(f"test set {path} holds no questions: one JSON object per line")
    return items


def _parse_item(line: str, haystacks: list[str]) -> tuple[TestItem | None, list[str]]:
    """The item on one line, or None, with what is wrong with it."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as error:
        return None, [f"invalid JSON ({error.msg} at column {error.colno})"]
    if not isinstance(raw, dict):
        return None, ["not a JSON object"]
    errors = [f"missing field {name!r}" for name in FIELDS if name not in raw]
    if errors:
        return None, errors

    def strings(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(s, str) and s.strip() for s in value)

    if not isinstance(raw["id"], str) or not raw["id"].strip():
        errors.append("id must be a non-empty string")
    if raw["lang"] not in LANGUAGES:
        errors.append(f"unknown lang {raw['lang']!r} (use 'fr' or 'en')")
    if not isinstance(raw["question"], str) or not raw["question"].strip():
        errors.append("question must be a non-empty string")
    if not isinstance(raw["answerable"], bool):
        errors.append("answerable must be true or false")
    groups = raw["answer_groups"]
    if not isinstance(groups, list) or not all(strings(g) and g for g in groups):
        errors.append("answer_groups must be a list of non-empty lists of strings")
    if not strings(raw["evidence"]):
        errors.append("evidence must be a list of non-empty strings")
    if not isinstance(raw["reference"], str):
        errors.append("reference must be a string")
    if errors:
        return None, errors
    if raw["answerable"] and not (groups and raw["evidence"]):
        errors.append("answerable, so answer_groups and evidence must not be empty")
    if not raw["answerable"] and raw["evidence"]:
        errors.append("unanswerable, so evidence must be empty")
    for span in raw["evidence"]:
        needle = normalize(span)
        if not any(needle in hay for hay in haystacks):
            errors.append(f"evidence {_short(span)!r} not found in the corpus")
    item = TestItem(raw["id"], raw["lang"], raw["question"], raw["answerable"],
                    tuple(tuple(g) for g in groups), tuple(raw["evidence"]), raw["reference"])
    return item, errors


def _short(text: str, limit: int = 50) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def document_texts(chunks: Iterable[Chunk]) -> list[str]:
    """The documents' texts rebuilt from their passages' offsets (gaps between sentences as spaces).

    Lets the test set be checked against whatever an index holds, without re-reading files.

    >>> from qa.types import Chunk
    >>> document_texts([Chunk("a#1", "a", "a.txt", 4, 9, "Deux.", "fr"),
    ...                 Chunk("a#0", "a", "a.txt", 0, 3, "Un.", "fr")])
    ['Un. Deux.']
    """
    docs: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        docs.setdefault(chunk.doc_id, []).append(chunk)
    texts = []
    for parts in docs.values():
        buffer = [" "] * max(c.end for c in parts)
        for c in parts:
            buffer[c.start : c.end] = c.text
        texts.append("".join(buffer))
    return texts


def select(items: Sequence[TestItem], limit: int | None) -> list[TestItem]:
    """The first `limit` items, taking the languages in turn so a small limit covers both.

    Order within a language is kept. No limit: all items, in file order.
    """
    if limit is None or limit >= len(items):
        return list(items)
    by_lang: dict[str, list[TestItem]] = {}
    for item in items:
        by_lang.setdefault(item.lang, []).append(item)
    queues = list(by_lang.values())
    chosen: list[TestItem] = []
    depth = 0
    while len(chosen) < limit:
        for queue in queues:
            if depth < len(queue) and len(chosen) < limit:
                chosen.append(queue[depth])
        depth += 1
    return chosen
