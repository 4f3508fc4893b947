"""Cross-language retrieval on data nobody here wrote: French PIAF paragraphs asked in English.

    .venv/bin/python bench/cross_language.py [SQUAD_FILE] [--paragraphs 60] [--per-paragraph 2]
        [--seed 1] [--work artifacts/bench/cross-language] [--out .../report.json]

No public set asks across languages, so this one is made: `--paragraphs` paragraphs of a French
SQuAD-format file (default: PIAF) are indexed, `--per-paragraph` of their questions each are
translated into English by the configured model, and every sentence of the passages is
translated into English too (as `qa translate` does). Retrieval is then measured for the English
questions with no translation remembered and with the passages' translations (recall@1..5 and
MRR per retrieval mode, hit = a passage of the question's own paragraph holding a gold answer),
and for the original French questions as a reference.

The 0.5B default model often answers a question instead of translating it ("Qui était le
commandant de Treblinka ?" -> "The commander of Treblinka was John."): the English questions are
a noisy stand-in for real ones, and they are printed for inspection. Translations are kept in
`--work`, so a second run takes seconds instead of about 20 minutes. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import random
from functools import partial
from pathlib import Path

from qa.chunking import chunk_documents
from qa.embedding import make_embedder
from qa.evaluation import RetrievalCase, retrieval_baselines
from qa.index import build_index
from qa.pipeline import Pipeline
from qa.report import jsonable
from qa.settings import Settings
from qa.squad import SquadQuestion, SquadSet, own_passage_hit, read_squad
from qa.translations import TranslationMemory
from qa.types import Document

PIAF = Path(__file__).resolve().parents[2] / "shared" / "bench-data" / "piaf" / "piaf-v1.0.json"
SHOWN = ("recall@1", "recall@5", "mrr")


def sample_paragraphs(squad: SquadSet, paragraphs: int, per_paragraph: int,
                      seed: int) -> tuple[list[Document], list[SquadQuestion]]:
    """`paragraphs` answerable paragraphs of the set and `per_paragraph` of their questions each,
    drawn with `random.Random(seed)` (bench/retrieval.py reads the same ones)."""
    rng = random.Random(seed)
    by_paragraph: dict[str, list[SquadQuestion]] = {}
    for q in squad.questions:
        if not q.impossible:
            by_paragraph.setdefault(q.doc_id, []).append(q)
    chosen = rng.sample([d for d in squad.documents if d.doc_id in by_paragraph], paragraphs)
    questions = [q for d in chosen for q in
                 rng.sample(by_paragraph[d.doc_id], min(per_paragraph, len(by_paragraph[d.doc_id])))]
    return chosen, questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("squad_file", nargs="?", type=Path, default=PIAF)
    parser.add_argument("--paragraphs", type=int, default=60)
    parser.add_argument("--per-paragraph", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("artifacts/bench/cross-language"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    settings = Settings.from_env()
    squad = read_squad(args.squad_file)
    paragraphs, questions = sample_paragraphs(squad, args.paragraphs, args.per_paragraph, args.seed)

    embedder = make_embedder(settings.embedder, threads=settings.threads)
    chunks = chunk_documents(list(paragraphs), settings.chunk_size, settings.chunk_overlap)
    index = build_index(chunks, embedder, chunk_size=settings.chunk_size,
                        chunk_overlap=settings.chunk_overlap, corpus_hash="cross-language", sources=[])
    args.work.mkdir(parents=True, exist_ok=True)
    passages = TranslationMemory(args.work / "passages.json")
    asked = TranslationMemory(args.work / "questions.json")
    pipeline = Pipeline(settings, embedder=embedder, index=index, translations=passages).load()
    translator = Pipeline(settings, embedder=embedder, evidence_embedder=pipeline.evidence_embedder,
                          index=index, generator=pipeline.generator,
                          translations=asked).load()
    english = ["".join(translator.translate(q.question, "fr", "en")).strip() for q in questions]
    for q, text in zip(questions, english, strict=True):
        print(f"{q.question}  ->  {text}")
    translated, known = pipeline.prepare_translations(targets=("en",), progress=True)

    def cases(texts: list[str], language: str) -> list[RetrievalCase]:
        return [RetrievalCase(t, partial(own_passage_hit, q), language=language)
                for q, t in zip(questions, texts, strict=True)]

    results = {
        "english, nothing translated": retrieval_baselines(index, embedder, cases(english, "en"), progress=False),
        "english, passages translated": retrieval_baselines(index, embedder, cases(english, "en"),
                                                            progress=False, translations=passages),
        "french (original questions)": retrieval_baselines(index, embedder,
                                                           cases([q.question for q in questions], "fr"),
                                                           progress=False),
    }
    print(f"\n{len(paragraphs)} paragraphs, {len(chunks)} passages, {len(questions)} questions; "
          f"{translated + known} sentences translated ({known} remembered)")
    for name, by_mode in results.items():
        cells = "  ".join(f"{mode} " + " / ".join(f"{by_mode[mode]['all'][k]:.3f}" for k in SHOWN)
                          for mode in by_mode)
        print(f"{name:30s} ({' / '.join(SHOWN)})  {cells}")
    out = args.out or args.work / "report.json"
    report = {"file": str(args.squad_file), "seed": args.seed, "paragraphs": len(paragraphs),
              "passages": len(chunks), "results": results,
              "questions": [{"fr": q.question, "en": t} for q, t in zip(questions, english, strict=True)]}
    out.write_text(json.dumps(jsonable(report), ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"report: {out}")


if __name__ == "__main__":
    main()
