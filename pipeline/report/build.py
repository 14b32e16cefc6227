"""`sept-pipeline report RUNS_DIR`: read every run, write report.md, report.html, the CSV tables and the pictures."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cache.atomic import atomic_write_text
from cache.errors import UserError
from pipeline.protocols.table import BASE2NEW, CROSS, FEWSHOT
from pipeline.report import compare as published_compare
from pipeline.report import figures, paired, render, tables
from pipeline.report.collect import Collected, collect_runs
from pipeline.report.html import write_html

DEFAULT_OUT = "report"
SPLIT_TITLES = {tables.VALIDATION: "validation runs (eval_split = val)"}
SPLIT_NOTES = {tables.VALIDATION: "Validation runs (data.eval_split = \"val\"): scored on a view carved out of the "
                                  "base classes' training items, for choosing settings; they are not results and "
                                  "are never put in a table with test runs (files *-val.csv)."}


@dataclass
class Report:
    out_dir: Path
    markdown: str
    collected: Collected
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    paired: list[dict] | None = None      # --paired: one row per comparison and metric (paired.csv)

    def summary(self) -> dict:
        out = {
            "out_dir": str(self.out_dir),
            "runs": len(self.collected.runs),
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.collected.skipped],
            "warnings": self.warnings,
            "files": [str(p) for p in self.files],
        }
        if self.paired is not None:
            out["paired"] = self.paired
        return out


def build_report(runs_dir: str | Path, out_dir: str | Path | None = None, compare: bool = False,
                 diagnostic: tuple[list[str], list[Path]] | None = None, paired_by: str | None = None) -> Report:
    """Tables (Markdown + CSV) and the base-vs-new picture from every metrics.json under `runs_dir`.

    `diagnostic`: (Markdown, files) already made by the semantic-structure diagnostic, appended as they are.
    `paired_by`: a key (sept.enabled, sept.lam, ...): the per-seed paired differences of runs differing in it.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"RUNS_DIR {runs_dir}: not a folder (expected a folder of run directories with metrics.json)")
    out_dir = Path(out_dir) if out_dir else runs_dir / DEFAULT_OUT
    collected = collect_runs(runs_dir)
    if not collected.runs:
        why = f"; skipped {len(collected.skipped)} unusable: " + "; ".join(
            s.line() for s in collected.skipped) if collected.skipped else ""
        raise UserError(f"RUNS_DIR {runs_dir}: no finished run found (no usable metrics.json){why}")

    comparisons = paired.paired(collected, paired_by) if paired_by else None  # a bad --by: refused before writing
    runs = tables.runs_frame(collected)
    report = Report(out_dir=out_dir, markdown="", collected=collected,
                    warnings=tables.duplicate_seeds(runs) + tables.uneven_folds(runs))
    sections = [f"# Results: {runs_dir}",
                f"{len(collected.runs)} finished runs read from `{runs_dir}`"
                + (f", {len(collected.skipped)} metrics files skipped (listed at the end)." if collected.skipped
                   else ".") + " " + render.CONVENTIONS]
    for split in eval_splits(runs):
        sections += _split_sections(report, collected, runs.filter(pl.col("eval_split") == split), split, out_dir,
                                    compare)
    if comparisons is not None:
        sections += _paired_sections(report, comparisons, paired_by, out_dir)

    curves = render.tensorboard_markdown(runs_dir, [r["run"] for r in collected.runs], out_dir)
    if curves:
        sections += ["## Training curves", curves]
    if diagnostic:
        sections += diagnostic[0]
        report.files += diagnostic[1]
    if report.warnings:
        sections += ["## Warnings", "\n".join(f"- {w}" for w in report.warnings)]
    if collected.skipped:
        sections += ["## Skipped metrics files",
                     "\n".join(f"- `{s.path}`: {s.reason}" for s in collected.skipped)]

    report.files.append(render.write_csv(runs.sort("run"), out_dir / "runs.csv"))
    report.markdown = "\n\n".join(sections) + "\n"
    atomic_write_text(out_dir / "report.md", report.markdown)
    report.files.append(out_dir / "report.md")
    report.files.append(write_html(report.markdown, out_dir))  # the same text as one self-contained page
    return report


def eval_splits(runs: pl.DataFrame) -> list[str]:
    """The evaluation splits present: test first, then the validation runs, then any other."""
    present = set(runs["eval_split"].to_list())
    return sorted(present, key=lambda s: (s != "test", s != tables.VALIDATION, s))


def _split_sections(report: Report, collected: Collected, runs: pl.DataFrame, split: str, out_dir: Path,
                    compare: bool) -> list[str]:
    """The tables of one evaluation split: a validation run never shares a table with a test run."""
    suffix, title = ("", "") if split == "test" else (f"-{split}", f" — {SPLIT_TITLES.get(split, split)}")
    sections = [f"**{SPLIT_NOTES[split]}**"] if split in SPLIT_NOTES else []
    b2n = tables.base2new_table(runs)
    if not b2n.is_empty():
        sections += [f"## Base-to-new generalisation{title}", render.base2new_markdown(b2n), render.BASE2NEW_NOTE]
        report.files.append(render.write_csv(b2n, out_dir / f"{BASE2NEW}{suffix}.csv"))
        report.files += figures.base_vs_new(b2n, out_dir / f"base_vs_new{suffix}")
        sections.append(f"![base vs new{title}](base_vs_new{suffix}.png)")
        if compare and split == "test":
            cmp, lines = published_compare.compare(b2n, collected, BASE2NEW)
            sections += ["## Compared with published numbers", published_compare.markdown(cmp, lines, BASE2NEW)]
            if not cmp.is_empty():
                report.files.append(render.write_csv(cmp, out_dir / "compare.csv"))

    cross = tables.cross_table(collected, split)
    if not cross.is_empty():
        sections += [f"## Cross-dataset transfer{title}", render.cross_markdown(cross, collected.excluded,
                                                                          collected.class_overlaps)]
        report.files.append(render.write_csv(cross, out_dir / f"{CROSS}{suffix}.csv"))

    fewshot = tables.fewshot_table(runs)
    if not fewshot.is_empty():
        sections += [f"## Few-shot (all classes){title}", render.fewshot_markdown(fewshot)]
        report.files.append(render.write_csv(fewshot, out_dir / f"{FEWSHOT}{suffix}.csv"))
        if compare and split == "test":
            cmp, lines = published_compare.compare(fewshot, collected, FEWSHOT)
            sections += ["## Few-shot compared with published numbers",
                         published_compare.markdown(cmp, lines, FEWSHOT)]
            if not cmp.is_empty():
                report.files.append(render.write_csv(cmp, out_dir / "compare_fewshot.csv"))
    return sections


def _paired_sections(report: Report, comparisons: list, key: str, out_dir: Path) -> list[str]:
    """Per evaluation split (validation runs apart): the paired differences by `key`, Markdown and paired.csv."""
    report.paired = paired.rows(comparisons)
    sections = []
    splits = sorted({c.eval_split for c in comparisons}, key=lambda s: (s != "test", s)) or ["test"]
    for split in splits:
        title = "" if split == "test" else f" — {SPLIT_TITLES.get(split, split)}"
        sections += [f"## Paired differences by {key}{title}",
                     paired.markdown([c for c in comparisons if c.eval_split == split], key)]
    frame = pl.DataFrame(report.paired) if report.paired else pl.DataFrame()
    if not frame.is_empty():
        report.files.append(render.write_csv(frame, out_dir / "paired.csv"))
    return sections


def frames(runs_dir: str | Path) -> dict[str, pl.DataFrame]:
    """The three tables as polars frames, for notebooks and tests."""
    collected = collect_runs(runs_dir)
    runs = tables.runs_frame(collected)
    return {"runs": runs, BASE2NEW: tables.base2new_table(runs), CROSS: tables.cross_table(collected),
            FEWSHOT: tables.fewshot_table(runs)}
