"""Pick the validated settings of the WordNet-Sounds efficacy benchmark (docs/efficacy.md), by the rules of its
pre-registered plan.

Reads a validation sweep's runs through `sept-pipeline report RUNS --json` (its base2new-val.csv, the table of
validation runs, which `report` never mixes with test runs: one row per setting, mean validation base / new /
HM over seeds) and chooses, per group of rows (dataset, method, SEPT on/off), one setting:

- the highest mean validation HM wins; every setting within `--tie-margin` HM points of it counts as a tie
  (default 0: equal means only; the efficacy plan's 0.1 is passed by benchmarks/efficacy_wordnet.sh);
- a tie goes to the preferred generation (`--prefer sept.generation=wn-v3`: the default stage one), then to
  the cheaper setting (fewer epochs, fewer neighbors per step), then to the smaller one (smaller sept.lam,
  smaller method.kg_weight), then to the higher HM;
- a group without SEPT that sits beside a SEPT group of the same method (KgCoOp: lambda 0 beside
  lambda > 0) is the **baseline arm**: its own best setting is reported, but the final runs it at the SEPT
  winner's non-SEPT settings (KgCoOp's w), so the pair differs only in SEPT; `--check` does not check it.

Refuses a folder holding a run that was not scored on the validation view (`data.eval_split = "val"`): test
results never take part in a choice. Keys the run records rather than the config sets (the generation key a
run read: `sept.generation_used`) are never part of a winner.

    python -m benchmarks.efficacy_select efficacy-out/runs/val-lambda [--json]
    python -m benchmarks.efficacy_select efficacy-out/runs/val-generation --prefer sept.generation=wn-v3 \\
        --value sept.generation                    (prints the one winning value, for a script)
    python -m benchmarks.efficacy_select efficacy-out/runs/val-epochs --keys train.epochs --value train.epochs
        (--keys: a chosen key that every run shares, a grid of one value, is read from the runs' config.json)
    python -m benchmarks.efficacy_select efficacy-out/runs/val-lambda --check configs/sweeps/efficacy-wordnet-coop.toml
        (exit 1 unless the sweep file holds the winners of the methods it runs: the final sweep runs what
        validation chose; --every-method when one method stood in for all, as CoOp does for the epochs)
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

# A tie goes to the smaller value of these keys, in this order: the cheaper settings first, then the smaller.
TIE_KEYS = ("train.epochs", "sept.neighbors_per_step", "sept.lam", "method.kg_weight")
SEPT_ONLY = ("sept.", "neighbors.")  # keys that do not touch a run without SEPT


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


def _run_facts() -> set[str]:
    """Manifest keys a run supplies itself (not settable): never part of a winner."""
    from pipeline.protocols.record import MANIFEST_KEYS

    return {mk.key for mk in MANIFEST_KEYS if mk.from_run}


def settings(variant: str) -> dict[str, str]:
    """'sept.lam=0.5, train.epochs=5' -> {'sept.lam': '0.5', 'train.epochs': '5'} (run facts left out)."""
    facts = _run_facts()
    pairs = (part.split("=", 1) for part in variant.split(", ") if "=" in part)
    return {k: v for k, v in pairs if k not in facts}


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else 0.0
    except ValueError:
        return float("inf")  # 'all' neighbors per step: the most expensive


def same_value(recorded: object, chosen: str) -> bool:
    """A sweep file's value (TOML-typed) equals a winner's (report text): as numbers when both are, else as text."""
    if isinstance(recorded, bool):
        return str(recorded).lower() == chosen.lower()
    try:
        return float(recorded) == float(chosen)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(recorded) == chosen


def parse_prefer(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"--prefer {item!r}: expected KEY=VALUE, e.g. sept.generation=wn-v3")
        out[key] = value
    return out


def pick(members: list[dict], prefer: dict[str, str] | None = None, margin: float = 0.0) -> tuple[dict, list[dict]]:
    """(winner, rows ranked by mean HM) of one group, by the rule of the module docstring."""
    prefer = prefer or {}
    ranked = sorted(members, key=lambda r: -float(r["hm_mean"]))
    best = float(ranked[0]["hm_mean"])
    tied = [r for r in ranked if float(r["hm_mean"]) >= best - margin - 1e-9]

    def order(r: dict) -> tuple:
        keys = settings(r["variant"] or "")
        preferred = tuple(0 if keys.get(k) == v else 1 for k, v in prefer.items())
        return (*preferred, *(_number(keys.get(k)) for k in TIE_KEYS), -float(r["hm_mean"]))

    return min(tied, key=order), ranked


def winners(rows: list[dict], prefer: dict[str, str] | None = None, margin: float = 0.0) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["sept"].lower() == "true"), []).append(r)
    chosen = []
    for (dataset, method, sept), members in sorted(groups.items()):
        best, ranked = pick(members, prefer, margin)
        chosen.append({"dataset": dataset, "method": method, "sept": sept, "winner": settings(best["variant"] or ""),
                       "val_hm_mean": float(best["hm_mean"]), "seeds": best["seeds"],
                       "grid": [{"setting": settings(r["variant"] or ""), "val_base": float(r["base_mean"]),
                                 "val_new": float(r["new_mean"]), "val_hm": float(r["hm_mean"]),
                                 "val_hm_std": float(r["hm_std"] or "nan")} for r in ranked]})
    for g in chosen:  # a group without SEPT beside a SEPT group of its method: the baseline arm
        partner = next((s for s in chosen if s["sept"] and not g["sept"] and s["dataset"] == g["dataset"]
                        and s["method"] == g["method"]), None)
        if partner is not None:
            g["baseline_arm"] = {k: v for k, v in partner["winner"].items() if not k.startswith(SEPT_ONLY)}
    return chosen


def _in_grid(raw: dict, key: str, value: str) -> bool | None:
    """None: the key is no [grid] axis; else whether the axis holds the value (an arm runs the winner)."""
    axis = raw.get("grid", {}).get(key)
    return None if not isinstance(axis, list) else any(same_value(v, value) for v in axis)


def check_sweep_file(path: Path, result: list[dict], every_method: bool = False) -> list[str]:
    """Where the sweep file disagrees with a winner: one line each (empty = it holds them all).

    A winner applies to the file when the file's [grid] runs its method (any method with every_method: one
    method stood in for all). Baseline arms are reported, not checked. SEPT's own keys are checked only
    in files that run SEPT. A winner of dataset D is looked up in [per_dataset.D] first, then in [set], then
    in a [grid] axis (which must hold it among its values: the real generation beside its controls)."""
    import tomllib

    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    grid = raw.get("grid", {})
    methods, septs = grid.get("method", []), grid.get("sept", [False])
    problems, checked = [], 0
    for g in result:
        if "baseline_arm" in g or not (every_method or g["method"] in methods):
            continue
        table = raw.get("per_dataset", {}).get(g["dataset"], {})
        fixed = {**raw.get("set", {}), **table}
        where = f"[per_dataset.{g['dataset']}]" if table else "[set]"
        for key, value in g["winner"].items():
            if key.startswith(SEPT_ONLY) and True not in septs:
                continue
            checked += 1
            if key in fixed:
                if not same_value(fixed[key], value):
                    problems.append(f"{path}: {where} \"{key}\" = {fixed[key]!r}, but validation chose {value} "
                                    f"for {g['dataset']} {g['method']}")
                continue
            held = _in_grid(raw, key, value)
            if held is None:
                problems.append(f"{path}: {where} lacks \"{key}\" = {value} (the winner of {g['dataset']} "
                                f"{g['method']} sept={str(g['sept']).lower()})")
            elif not held:
                problems.append(f"{path}: [grid] \"{key}\" = {grid[key]!r} lacks {value}, which validation chose "
                                f"for {g['dataset']} {g['method']}")
    if not checked and not problems:
        problems.append(f"{path}: no winner of this validation folder applies to this file (methods "
                        f"{methods}; --every-method when one method stood in for all)")
    return problems


def add_shared_keys(result: list[dict], runs_dir: Path, keys: list[str]) -> None:
    """A key chosen by this validation that its runs all share (a grid of one setting: no variant names it) is
    read from the runs' resolved config (config.json) into each group's winner."""
    configs: dict[tuple, list[dict]] = {}
    for path in runs_dir.rglob("metrics.json"):
        if any(s.startswith(".") for s in path.relative_to(runs_dir).parts[:-1]):
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        config = json.loads((path.parent / "config.json").read_text(encoding="utf-8"))
        group = (record["dataset"], record["method"], bool(record["sept"].get("enabled")))
        configs.setdefault(group, []).append(config)
    for g in result:
        for key in keys:
            if key in g["winner"]:
                continue
            section, _, name = key.partition(".")
            values = {json.dumps(c.get(section, {}).get(name)) for c in configs.get((g["dataset"], g["method"],
                                                                                     g["sept"]), [])}
            if len(values) != 1 or values == {"null"}:
                raise SystemExit(f"--keys {key}: the runs of {g['dataset']} {g['method']} sept={g['sept']} under "
                                 f"{runs_dir} do not share one value of it ({sorted(values) or 'no runs'})")
            value = json.loads(values.pop())
            g["winner"][key] = value if isinstance(value, str) else json.dumps(value)


def value_of(result: list[dict], key: str) -> str:
    """The one winning value of `key` over the (non-baseline-arm) groups; an error if they disagree or lack it."""
    values = {g["winner"][key] for g in result if "baseline_arm" not in g and key in g["winner"]}
    if len(values) != 1:
        raise SystemExit(f"--value {key}: the groups chose {sorted(values) or 'no value'}; expected exactly one")
    return values.pop()


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


def describe(result: list[dict], n: int, runs_dir: Path, prefer: dict[str, str], margin: float) -> str:
    pref = "".join(f"{k}={v}, then " for k, v in prefer.items())
    lines = [f"{n} validation runs under {runs_dir}; rule: highest mean validation HM; a tie (within {margin:g} HM) "
             f"goes to {pref}the smaller {', '.join(TIE_KEYS)}"]
    for g in result:
        sept = "SEPT" if g["sept"] else "no SEPT"
        lines.append(f"\n{g['dataset']} {g['method']} {sept} (seeds {g['seeds']}):")
        for row in g["grid"]:
            mark = "*" if row["setting"].items() <= g["winner"].items() else " "
            label = (", ".join(f"{k}={v}" for k, v in row["setting"].items())
                     or "(one setting: " + ", ".join(f"{k}={v}" for k, v in g["winner"].items()) + ")")
            lines.append(f" {mark} {label:<58} base {row['val_base']:6.2f}  new {row['val_new']:6.2f}  "
                         f"HM {row['val_hm']:6.2f} +/- {row['val_hm_std']:.2f}")
        if "baseline_arm" in g:
            arm = ", ".join(f"{k}={v}" for k, v in g["baseline_arm"].items()) or "its SEPT pair's settings"
            lines.append(f"   baseline arm: its own best is marked; the final pairs it with SEPT at {arm}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", type=Path, help="folder of the validation sweep's runs")
    ap.add_argument("--json", action="store_true", help="print the winners as JSON")
    ap.add_argument("--prefer", action="append", default=[], metavar="KEY=VALUE",
                    help="a tie goes first to this value of KEY (repeatable), e.g. sept.generation=wn-v3")
    ap.add_argument("--tie-margin", type=float, default=0.0, metavar="HM",
                    help="settings within this many mean HM points of the best tie (default 0: equal means)")
    ap.add_argument("--check", type=Path, action="append", default=[], metavar="SWEEP_TOML",
                    help="exit 1 unless this sweep file holds the winners of the methods it runs (repeatable)")
    ap.add_argument("--every-method", action="store_true",
                    help="with --check: the winners hold for every method (one method stood in for all)")
    ap.add_argument("--keys", nargs="+", default=[], metavar="KEY",
                    help="keys this validation chooses; one its runs all share (a grid of one value) is read from "
                         "their config.json into the winner")
    ap.add_argument("--value", metavar="KEY", help="print only the one winning value of KEY")
    ap.add_argument("--toml", action="store_true", help="print the winners as [per_dataset.D] tables")
    args = ap.parse_args(argv)
    prefer = parse_prefer(args.prefer)
    n = check_validation_only(args.runs_dir)
    if args.tie_margin < 0:
        raise SystemExit(f"--tie-margin {args.tie_margin}: must be 0 or more (HM points)")
    result = winners(report_table(args.runs_dir), prefer, args.tie_margin)
    add_shared_keys(result, args.runs_dir, args.keys)
    problems = [line for path in args.check for line in check_sweep_file(path, result, args.every_method)]
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        raise SystemExit(1)
    if args.value:
        print(value_of(result, args.value))
    elif args.json:
        print(json.dumps({"runs": n, "rule": {"tie_margin": args.tie_margin, "prefer": prefer, "tie_keys": TIE_KEYS},
                          "groups": result}, indent=2))
    elif args.toml:
        print(per_dataset_toml(result), end="")
    else:
        print(describe(result, n, args.runs_dir, prefer, args.tie_margin))
        for path in args.check:
            print(f"checked: {path} holds the winners")


if __name__ == "__main__":
    main()
