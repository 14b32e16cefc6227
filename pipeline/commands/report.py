"""`sept-pipeline report RUNS_DIR`: the field's tables, pictures and the semantic-structure diagnostic."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import emit_json, json_option


def register(cli) -> None:
    @cli.command("report")
    @click.argument("runs_dir", type=click.Path(path_type=Path))
    @click.option("--out", type=click.Path(path_type=Path), default=None,
                  help="Report folder (default RUNS_DIR/report).")
    @click.option("--compare", is_flag=True,
                  help="Put published averages beside ours, labelled, with the delta (SEPT's base-to-new and PALM's "
                       "few-shot figures), only beside runs made under the conditions recorded for each "
                       "(docs/method.md); otherwise say which recipe would be.")
    @click.option("--paired", is_flag=True,
                  help="Per-seed differences of runs that differ only in --by (default sept.enabled): base, new "
                       "and HM (each seed's folds averaged first), mean, SD, 95% interval (Student t) and the "
                       "sign count; Markdown, paired.csv and --json.")
    @click.option("--by", "by", default=None, metavar="KEY",
                  help="With --paired: the one key the paired runs differ in (default sept.enabled; e.g. "
                       "sept.boundary_filter, sept.lam).")
    @click.option("--diagnostic", is_flag=True,
                  help="Also draw the semantic-structure heat maps: for each pair of runs that differ only in "
                       "SEPT (lowest common seed), class-to-neighbor cosine similarity under the template, the "
                       "prompt without SEPT and with SEPT, from the arrays each run wrote (diagnostic.npz); no "
                       "model or store is loaded.")
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None, hidden=True,
                  help="Ignored: --diagnostic reads the arrays the runs wrote (accepted so older command lines run).")
    @json_option
    def report(runs_dir, out, compare, paired, by, diagnostic, cache_dir, as_json) -> None:
        """Tables of every finished run under RUNS_DIR (each folder with a metrics.json), as Markdown and CSV.

        \b
        Base-to-new: per dataset and method, base / new / HM as mean ± std over seeds, and an average row
        (the mean of per-dataset HM). Cross-dataset: source, each target, average. Few-shot: accuracy per
        dataset. Pictures (PNG + SVG): base vs new per method with and without SEPT. A metrics file that
        cannot be read is named on stderr and in the report, and skipped.
        \b
        Runs are averaged only within one setting (manifest and config, seed and fold apart); validation runs
        (eval_split "val") get tables of their own, labelled, never mixed with test runs.
        \b
        Writes OUT/report.md, report.html (the same, one self-contained page with the pictures inline),
        base2new.csv, cross.csv, fewshot.csv (and *-val.csv for validation runs), runs.csv, compare.csv
        (--compare), paired.csv (--paired), base_vs_new.png/.svg, and with --diagnostic
        semantic_structure-*.png/.svg and diagnostic.json.
        \b
        Examples:
          sept-pipeline report runs/demo-sweep
          sept-pipeline report runs/demo-sweep --compare --out reports/demo
          sept-pipeline report runs/demo-sweep --paired
          sept-pipeline report runs/demo-sweep --paired --by sept.boundary_filter --json
          sept-pipeline report runs/demo-sweep --diagnostic --json
        """
        from cache.errors import UserError
        from pipeline.report.build import build_report
        from pipeline.report.paired import DEFAULT_KEY

        if by and not paired:
            raise UserError(f"--by {by}: goes with --paired (the key the paired runs differ in)")
        diagnosis = None
        if diagnostic:
            from pipeline.report.build import DEFAULT_OUT
            from pipeline.report.diagnostic import diagnostic_sections

            diagnosis = diagnostic_sections(runs_dir, out or runs_dir / DEFAULT_OUT, progress=not as_json)
        result = build_report(runs_dir, out, compare=compare, diagnostic=diagnosis,
                              paired_by=(by or DEFAULT_KEY) if paired else None)
        for skipped in result.collected.skipped:
            click.echo(f"warning: {skipped.line()}", err=True)
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
        if as_json:
            emit_json(result.summary())
        else:
            click.echo(result.markdown)
            click.echo(f"wrote {result.out_dir / 'report.md'}, report.html and {len(result.files) - 2} more files "
                       f"in {result.out_dir}")
