"""`qa eval` with the reader's prompt size recorded: how many prompt tokens each question's
reader call had, and how many of them were not in the KV cache (read at about 90 tokens/s).

    python bench/prompt_size.py [--read N] [--following N] [--order rank|best-last] [--titles yes|no]
        -- <qa eval arguments>

The options set `qa.reader.reading_list`'s READ_SENTENCES, FOLLOWING, ORDER and TITLES for this
run only (the file is not edited). Writes `<out>/prompt_tokens.json` next to `qa eval`'s report:
per reader call, the question, prompt tokens, tokens found in the KV cache, tokens of the fixed
beginning (rules and worked examples), and the medians. Measures only the llama.cpp engine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--read", type=int, help="READ_SENTENCES for this run")
    parser.add_argument("--following", type=int, help="FOLLOWING for this run")
    parser.add_argument("--order", choices=["rank", "best-last"], help="ORDER for this run")
    parser.add_argument("--titles", choices=["yes", "no"], help="TITLES for this run")
    parser.add_argument("eval_args", nargs=argparse.REMAINDER, help="arguments of `qa eval`, after --")
    args = parser.parse_args(argv)
    eval_args = [a for a in args.eval_args if a != "--"] if args.eval_args[:1] == ["--"] else args.eval_args

    import qa.reader as reader
    from qa.cli import build_parser
    from qa.cli import main as qa_main
    from qa.generation import LlamaCppGenerator

    read = reader.READ_SENTENCES if args.read is None else args.read
    following = reader.FOLLOWING if args.following is None else args.following
    order = reader.ORDER if args.order is None else args.order
    titles = reader.TITLES if args.titles is None else args.titles == "yes"
    reader.READ_SENTENCES, reader.FOLLOWING, reader.ORDER, reader.TITLES = read, following, order, titles
    reader.reading_list.__defaults__ = (read, following, order, titles)  # the pipeline uses its defaults

    calls: list[dict] = []
    stream = LlamaCppGenerator.stream

    def recorded(self, messages, max_new_tokens, prefix=""):
        if not (messages and messages[0].get("content") == reader.SYSTEM):  # a translation, not the reader
            yield from stream(self, messages, max_new_tokens, prefix)
            return
        # counted before the call: the reader stops early on "NOT FOUND", and `last` is then not set
        tokens = self.prompt_tokens(messages, prefix)
        cached = min(self._cached(tokens), len(tokens) - 1)
        fixed = self._format_turns(messages=messages[:-1]).prompt
        fixed_tokens = len(self._llm.tokenize(fixed.encode("utf-8"), add_bos=False, special=True))
        calls.append({"question": messages[-1]["content"].rsplit("Question: ", 1)[-1].split("\n")[0],
                      "prompt_tokens": len(tokens), "cached_tokens": cached, "fixed_tokens": fixed_tokens,
                      "question_tokens": len(tokens) - fixed_tokens, "uncached_tokens": len(tokens) - cached})
        self.last = {}
        try:
            yield from stream(self, messages, max_new_tokens, prefix)
        finally:
            if self.last:
                calls[-1]["prefill_s"] = self.last["prefill_s"]

    LlamaCppGenerator.stream = recorded
    code = qa_main(["eval", *eval_args])
    out = build_parser().parse_args(["eval", *eval_args]).out

    def median(key: str) -> float | None:
        return statistics.median(c[key] for c in calls) if calls else None

    summary = {"read_sentences": read, "following": following, "order": order, "titles": titles,
               "reader_calls": len(calls),
               "median_prompt_tokens": median("prompt_tokens"),
               "median_question_tokens": median("question_tokens"),
               "median_uncached_tokens": median("uncached_tokens"),
               "median_prefill_s": statistics.median(c["prefill_s"] for c in calls if "prefill_s" in c)
               if any("prefill_s" in c for c in calls) else None, "calls": calls}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "prompt_tokens.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"reader calls {len(calls)}: median prompt {summary['median_prompt_tokens']} tokens, "
          f"question-specific {summary['median_question_tokens']}, not cached {summary['median_uncached_tokens']}, "
          f"prefill {summary['median_prefill_s']} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
