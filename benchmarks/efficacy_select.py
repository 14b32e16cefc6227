"""Pick the validated settings of the WordNet-Sounds efficacy benchmark (docs/efficacy.md), by one rule.

Reads the validation sweep's runs through `sept-pipeline report RUNS --json` (its base2new-val.csv, the table of
validation runs, which `report` never mixes with test runs: one row per
setting, mean validation base / new / HM over seeds) and prints, per group of rows (method, SEPT on/off),
the setting with the highest mean validation HM; ties go to the smaller sept.lam, then to the fewer epochs
and neighbors per step (the cheaper setting). Refuses a folder holding a run that was not scored on the
validation view (`data.eval_split = "val"`): test results never take part in a choice.

    python -m benchmarks.efficacy_select efficacy-out/runs/wordnet-val [--json]
    python -m benchmarks.efficacy_select efficacy-out/runs/wordnet-val --check configs/sweeps/efficacy-wordnet.toml
        (exit 1 unless the sweep file's [set] holds the winners: the final sweep runs what validation chose)
    python -m benchmarks.efficacy_select runs/b2n-palm11-val --toml
        (the winners as [per_dataset.NAME] tables, one per dataset, for a final sweep over many datasets;
        --check then reads a dataset's table before [set])
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

TIE_KEYS = ("sept.lam", "train.epochs", "sept.neighbors_per_step")  # smaller wins a tie, in this order


def report_table(runs_dir: Path) -> list[dict]:
    """The base2new-val.csv rows (validation runs) that `sept-pipeline report RUNS_DIR --json` writes."""
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", str(runs_dir), "--json"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"sept-pipeline report {runs_dir} failed: {proc.stderr.strip()}")
    files = [Path(f) for f in json.loads(proc.stdout)["files"]]
    table = next((f for f in files if f.name == "base2new-val.csv"), None)
    if table is None:
        raise SystemExit(f"{runs_dir}: the report has no base-to-new table of validation runs (no finished base2new "
                         f"run with data.eval_split = \"val\")")
    with open(table, newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["dataset"] != "Average"]  # per-dataset rows only


def check_validation_only(runs_dir: Path) -> int:
    """Every metrics.json under runs_dir must say eval_split "val"; returns how many runs there are."""
    paths = sorted(p for p in runs_dir.rglob("metrics.json") if not any(s.startswith(".") for s in p.parts))
    for path in paths:
        split = json.loads(path.read_text(encoding="utf-8")).get("eval_split", "test")
        if split != "val":
            raise SystemExit(f"{path}: eval_split is {split!r}; settings are chosen on validation runs only "
                             f"(data.eval_split = \"val\")")
    return len(paths)


def settings(variant: str) -> dict[str, str]:
    """'sept.lam=0.5, train.epochs=5' -> {'sept.lam': '0.5', 'train.epochs': '5'}."""
    return dict(part.split("=", 1) for part in variant.split(", ") if "=" in part)


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else 0.0
    except ValueError:
        return float("inf")  # 'all' neighbors per step: the most expensive


def winners(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["sept"]), []).append(r)
    chosen = []
    for (dataset, method, sept), members in sorted(groups.items()):
        def rank(r: dict) -> tuple:
            keys = settings(r["variant"] or "")
            return (-float(r["hm_mean"]), *(_number(keys.get(k)) for k in TIE_KEYS))
        ranked = sorted(members, key=rank)
        best = ranked[0]
        chosen.append({"dataset": dataset, "method": method, "sept": sept, "winner": settings(best["variant"] or ""),
                       "val_hm_mean": float(best["hm_mean"]), "seeds": best["seeds"],
                       "grid": [{"setting": settings(r["variant"] or ""), "val_base": float(r["base_mean"]),
                                 "val_new": float(r["new_mean"]), "val_hm": float(r["hm_mean"]),
                                 "val_hm_std": float(r["hm_std"] or "nan")} for r in ranked]})
    return chosen


def check_sweep_file(path: Path, result: list[dict]) -> list[str]:
    """Where the sweep file disagrees with a winner: one line each (empty = it holds them all). A winner of
    dataset D is looked up in [per_dataset.D] first, then in [set]."""
    import tomllib

    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    problems = []
    for g in result:
        table = raw.get("per_dataset", {}).get(g["dataset"], {})
        fixed = {**raw.get("set", {}), **table}
        where = f"[per_dataset.{g['dataset']}]" if table else "[set]"
        for key, value in g["winner"].items():
            if key not in fixed:
                problems.append(f"{path}: {where} lacks \"{key}\" = {value} (the winner of {g['dataset']} "
                                f"{g['method']} sept={g['sept']})")
            elif _number(str(fixed[key])) != _number(value):
                problems.append(f"{path}: {where} \"{key}\" = {fixed[key]!r}, but validation chose {value} "
                                f"for {g['dataset']}")
    return problems


def per_dataset_toml(result: list[dict]) -> str:
    """[per_dataset."D"] tables holding each dataset's winner (one winner per dataset: several groups of a
    dataset must agree, else it is an error)."""
    by_dataset: dict[str, dict] = {}
    for g in result:
        seen = by_dataset.setdefault(g["dataset"], g["winner"])
        if seen != g["winner"]:
            raise SystemExit(f"dataset {g['dataset']}: its groups chose different settings ({seen} vs "
                             f"{g['winner']}); one table per dataset cannot hold both")
    lines = []
    for dataset, winner in sorted(by_dataset.items()):
        lines.append(f'[per_dataset."{dataset}"]')
        lines += [f'"{k}" = {_toml_value(v)}' for k, v in winner.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(text: str) -> str:
    try:
        float(text)
        return text
    except ValueError:
        return json.dumps(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", type=Path, help="folder of the validation sweep's runs")
    ap.add_argument("--json", action="store_true", help="print the winners as JSON")
    ap.add_argument("--check", type=Path, metavar="SWEEP_TOML",
                    help="exit 1 unless this sweep file's [per_dataset.D] tables or [set] hold the winners")
    ap.add_argument("--toml", action="store_true", help="print the winners as [per_dataset.D] tables")
    args = ap.parse_args(argv)
    n = check_validation_only(args.runs_dir)
    result = winners(report_table(args.runs_dir))
    if args.check:
        problems = check_sweep_file(args.check, result)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            raise SystemExit(1)
    if args.json:
        print(json.dumps({"runs": n, "groups": result}, indent=2))
        return
    if args.toml:
        print(per_dataset_toml(result), end="")
        return
    print(f"{n} validation runs under {args.runs_dir}; rule: highest mean validation HM (ties: smaller "
          f"{', then '.join(TIE_KEYS)})")
    for g in result:
        sept = "SEPT" if g["sept"].lower() == "true" else "no SEPT"
        print(f"\n{g['dataset']} {g['method']} {sept} (seeds {g['seeds']}):")
        for row in g["grid"]:
            mark = "*" if row["setting"] == g["winner"] else " "
            label = ", ".join(f"{k}={v}" for k, v in row["setting"].items()) or "(one setting)"
            print(f" {mark} {label:<58} base {row['val_base']:6.2f}  new {row['val_new']:6.2f}  "
                  f"HM {row['val_hm']:6.2f} +/- {row['val_hm_std']:.2f}")


if __name__ == "__main__":
    main()
