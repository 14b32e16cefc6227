"""The efficacy table of docs/efficacy.md: per method, base / new / HM (mean +/- std over seeds) without and
with SEPT, and SEPT's delta (with minus without, on the means), from `sept-pipeline report RUNS --json`.

    python -m benchmarks.efficacy_table efficacy-out/runs/wordnet
"""
from __future__ import annotations

import argparse

from benchmarks.efficacy_select import report_table

LABELS = {"zeroshot": "Zero-shot", "coop": "CoOp", "kgcoop": "KgCoOp", "dept": "DePT", "cocoop": "CoCoOp"}


def cell(r: dict, key: str) -> str:
    std = r[f"{key}_std"]
    return f"{float(r[f'{key}_mean']):.2f}" + (f" ± {float(std):.2f}" if std not in ("", None) else "")


def markdown(rows: list[dict]) -> str:
    lines = ["| Method | SEPT | Seeds | Base | New | HM |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    by = {(r["method"], r["sept"].lower() == "true"): r for r in rows}
    for method in sorted({m for m, _ in by}, key=lambda m: list(LABELS).index(m) if m in LABELS else 99):
        label = LABELS.get(method, method)
        for sept in (False, True):
            if (method, sept) in by:
                r = by[(method, sept)]
                lines.append(f"| {label} | {'yes' if sept else 'no'} | {r['seeds']} | {cell(r, 'base')} | "
                             f"{cell(r, 'new')} | {cell(r, 'hm')} |")
        if (method, False) in by and (method, True) in by:
            off, on = by[(method, False)], by[(method, True)]
            d = [float(on[f"{k}_mean"]) - float(off[f"{k}_mean"]) for k in ("base", "new", "hm")]
            lines.append(f"| {label} | Δ SEPT | | {d[0]:+.2f} | {d[1]:+.2f} | **{d[2]:+.2f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", help="folder of the final sweep's runs")
    args = ap.parse_args(argv)
    print(markdown(report_table(args.runs_dir)))


if __name__ == "__main__":
    main()
