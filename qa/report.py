"""The evaluation report written out: report.json, and for people tables, a Markdown summary
and PNG plots.

Works on the report dict that `qa.evaluation` or `qa.squad` assembles and `write_report` writes
to report.json:

    {"config": {...}, "metrics": {group: {metric: value}}, "baselines": {mode: {group: {...}}},
     "rows": [{"id", "question", "answer", "expected", "failure", "timings", ...}]}

Undefined values (None or NaN) print as "–". matplotlib is imported inside `write_plots` only,
through its object-oriented API (`Figure`), so no global backend is selected and nothing heavy
loads at import.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

LABELS = {
    "questions": "questions",
    "answerable": "answerable",
    "unanswerable": "unanswerable",
    "recall@1": "recall@1",
    "recall@2": "recall@2",
    "recall@3": "recall@3",
    "recall@4": "recall@4",
    "recall@5": "recall@5",
    "mrr": "MRR",
    "answer_correct": "answer correct",
    "correct_and_cited": "correct and cited",
    "citation_precision": "citation precision",
    "exact_match": "exact match (SQuAD)",
    "f1": "F1 (SQuAD)",
    "answer_contains_gold": "answer contains a gold answer",
    "abstention_recall": "abstention recall",
    "false_abstention": "false abstention",
    "language_match": "language match",
    "total_s_median": "total latency, median (s)",
    "total_s_p95": "total latency, p95 (s)",
    "first_token_s_median": "first token, median (s)",
    "first_token_s_p95": "first token, p95 (s)",
}
COUNTS = {"questions", "answerable", "unanswerable"}
RECALL_COLUMNS = ("questions", "recall@1", "recall@3", "recall@5", "mrr")
FAILURES_SHOWN = 50
PLOT_FILES = ("metrics_by_language.png", "latency.png", "recall_at_k.png")


def is_missing(value: object) -> bool:
    """None or NaN: a metric that is undefined here (e.g. no unanswerable question).

    >>> is_missing(None), is_missing(float("nan")), is_missing(0.0)
    (True, True, False)
    """
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(key: str, value: object) -> str:
    """A metric as printed: counts as integers, seconds with 2 decimals, rates with 3.

    >>> format_value("questions", 80), format_value("total_s_p95", 3.14159)
    ('80', '3.14')
    >>> format_value("recall@5", 0.9), format_value("mrr", None)
    ('0.900', '–')
    """
    if is_missing(value):
        return "–"
    if key in COUNTS:
        return str(int(value))  # type: ignore[call-overload]
    if key.endswith(("_median", "_p95")):
        return f"{value:.2f}"
    return f"{value:.3f}"


def metrics_grid(metrics: Mapping[str, Mapping[str, object]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) with one row per metric and one column per group ("all", "fr", "en")."""
    groups = list(metrics)
    keys: list[str] = []
    for group in groups:
        keys.extend(k for k in metrics[group] if k not in keys)
    rows = [[LABELS.get(k, k), *(format_value(k, metrics[g].get(k)) for g in groups)] for k in keys]
    return ["metric", *groups], rows


def baselines_grid(baselines: Mapping[str, Mapping[str, Mapping[str, object]]],
                   group: str = "all") -> tuple[list[str], list[list[str]]]:
    """(header, rows) with one row per retrieval mode, recall@1/3/5 and MRR for `group`."""
    rows = [[mode, *(format_value(k, by_group[group].get(k)) for k in RECALL_COLUMNS)]
            for mode, by_group in baselines.items() if group in by_group]
    return ["mode", *(LABELS[k] for k in RECALL_COLUMNS)], rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with spaces, for a terminal.

    >>> print(text_table(["metric", "all"], [["MRR", "0.500"], ["questions", "8"]]))
    metric     all
    MRR        0.500
    questions  8
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table; `|` and line breaks in cells are escaped.

    >>> print(markdown_table(["a", "b"], [["x|y", "1"]]))
    | a | b |
    |---|---|
    | x\\|y | 1 |
    """
    def cell(text: object) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _code(value: object) -> str:
    return f"`{value}`" if value else ""


def _clip(text: object, limit: int = 200) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(report: Mapping) -> str:
    config = report.get("config", {})
    metrics = report.get("metrics") or {}
    baselines = report.get("baselines") or {}
    rows = report.get("rows") or []
    models = config.get("models", {})
    settings = config.get("settings", {})
    out = [
        "# Evaluation report",
        "",
        f"- test set: `{config.get('testset')}` ({config.get('kind', 'testset')}, "
        f"{config.get('questions', '?')} questions, {len(rows)} answered)",
        f"- models: embedder `{models.get('embedder')}`, evidence embedder `{models.get('evidence_embedder')}`, "
        f"generator `{models.get('llm')}`",
        f"- settings: top_k {settings.get('top_k')}, chunks {settings.get('chunk_size')}"
        f"/{settings.get('chunk_overlap')}, max_new_tokens {settings.get('max_new_tokens')}",
        f"- git commit: {_code(config.get('git_commit')) or 'unknown'}; date: {config.get('date')}",
    ]
    if config.get("limit") is not None:
        seed = f", seed {config['seed']}" if config.get("seed") is not None else ""
        out.append(f"- limit: {config['limit']}{seed}")
    if config.get("part") not in (None, "all"):
        out.append(f"- questions from the {config['part']} part of the split by paragraph")
    memory = config.get("translations")
    if memory:
        held = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in memory.items() if k != "mode")
        out.append(f"- translation memory: {memory['mode']}" + (f" ({held})" if held else ""))
    out += ["", "## Metrics", ""]
    if metrics:
        out.append(markdown_table(*metrics_grid(metrics)))
    else:
        out.append("No answers were generated (retrieval only).")
    if baselines:
        out += ["", "## Retrieval baselines (no generation)", ""]
        groups = list(next(iter(baselines.values())))
        for group in groups:
            if len(groups) > 1:
                out += [f"### {group}", ""]
            out += [markdown_table(*baselines_grid(baselines, group)), ""]
    failures = [r for r in rows if r.get("failure")]
    if rows:
        out += ["", f"## Failures ({len(failures)} of {len(rows)})", ""]
        if failures:
            shown = failures[:FAILURES_SHOWN]
            out.append(markdown_table(
                ["id", "question", "expected", "got", "why"],
                [[r.get("id", ""), _clip(r.get("question")), _clip(r.get("expected")),
                  _clip(r.get("answer")), r["failure"]] for r in shown]))
            if len(failures) > len(shown):
                out += ["", f"… and {len(failures) - len(shown)} more in report.json."]
        else:
            out.append("None.")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"


def write_markdown(report: Mapping, path: str | Path) -> Path:
    """Write the Markdown summary of `report` to `path`."""
    path = Path(path)
    path.write_text(render_markdown(report), encoding="utf-8")
    return path


def write_plots(report: Mapping, out_dir: str | Path) -> list[Path]:
    """Write the PNG plots that the report has data for; return their paths.

    metrics_by_language.png: rates by group (bars); latency.png: histograms of total and
    first-token latency; recall_at_k.png: recall@k for k = 1..5, one line per retrieval mode.
    """
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    metrics = report.get("metrics") or {}
    keys = [k for k in LABELS if k not in COUNTS and not k.endswith(("_median", "_p95"))
            and k not in ("recall@2", "recall@4")
            and any(not is_missing(m.get(k)) for m in metrics.values())]
    if keys:
        fig = Figure(figsize=(max(6.0, 1.1 * len(keys) + 2), 4.5), layout="constrained")
        ax = fig.subplots()
        width = 0.8 / len(metrics)
        for g, (group, values) in enumerate(metrics.items()):
            heights = [0.0 if is_missing(values.get(k)) else float(values[k]) for k in keys]
            ax.bar([i + g * width for i in range(len(keys))], heights, width, label=group)
        ax.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(keys))],
                      [LABELS[k] + (" (lower is better)" if k == "false_abstention" else "")
                       for k in keys], rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title("Metrics by language")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        written.append(out_dir / PLOT_FILES[0])
        fig.savefig(written[-1], dpi=110)

    rows = report.get("rows") or []
    series = {name: [r["timings"][name] for r in rows
                     if not is_missing(r.get("timings", {}).get(name))]
              for name in ("total_s", "first_token_s")}
    if any(series.values()):
        fig = Figure(figsize=(9, 3.8), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (name, values) in zip(axes, series.items(), strict=True):
            ax.hist(values, bins=min(20, max(1, len(values))))
            ax.set_title(f"{name} ({len(values)} answers)")
            ax.set_xlabel("seconds")
            ax.set_ylabel("questions")
        written.append(out_dir / PLOT_FILES[1])
        fig.savefig(written[-1], dpi=110)

    baselines = report.get("baselines") or {}
    if baselines:
        fig = Figure(figsize=(6, 4.2), layout="constrained")
        ax = fig.subplots()
        ks = range(1, 6)
        for mode, by_group in baselines.items():
            values = by_group.get("all", {})
            ys = [values.get(f"recall@{k}") for k in ks]
            ax.plot(list(ks), [float("nan") if is_missing(y) else y for y in ys], marker="o",
                    label=mode)
        ax.set_xticks(list(ks))
        ax.set_xlabel("k (passages retrieved)")
        ax.set_ylabel("recall@k")
        ax.set_ylim(0, 1.05)
        ax.set_title("Retrieval recall@k")
        ax.legend()
        written.append(out_dir / PLOT_FILES[2])
        fig.savefig(written[-1], dpi=110)
    return written


def jsonable(value: object) -> object:
    """`value` with NaN and infinities replaced by None, so the JSON is strict.

    >>> jsonable({"a": [1.0, float("nan")], "b": (2, "x")})
    {'a': [1.0, None], 'b': [2, 'x']}
    """
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def write_report(report: Mapping, out_dir: str | Path) -> dict:
    """Write report.json, report.md and the plots; return the report as written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = jsonable(report)
    tmp = out_dir / ".report.json.partial"
    tmp.write_text(json.dumps(clean, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(out_dir / "report.json")
    write_markdown(clean, out_dir / "report.md")
    write_plots(clean, out_dir)
    return clean  # type: ignore[return-value]


def format_table(metrics: Mapping, baselines: Mapping | None = None) -> str:
    """The metrics (rows) by group (columns) for a terminal, then the baselines if given.

    `metrics` is {group: {metric: value}}, or a whole report (then its baselines are shown too).
    """
    if "metrics" in metrics and "config" in metrics:  # a whole report
        metrics, baselines = metrics["metrics"], baselines or metrics.get("baselines")
    parts = [text_table(*metrics_grid(metrics))] if metrics else ["no answers (retrieval only)"]
    if baselines:
        parts.append(text_table(*baselines_grid(baselines, "all")))
    return "\n\n".join(parts)
