"""`sept-pipeline sweep --config SWEEP.toml`: run a grid of `tune` runs, locally or on Ray."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.commands.common import emit_json, json_option


def register(cli) -> None:
    @cli.command("sweep")
    @click.option("--config", "sweep_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="Sweep file (TOML with [sweep], [grid], [set], [ray]); see configs/sweeps/.")
    @click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
                  help="Override [sweep] executor.")
    @click.option("--max-parallel", type=click.IntRange(min=0), default=None,
                  help="Runs at once (0 = one per device); overrides [sweep] max_parallel.")
    @click.option("--address", default=None,
                  help="Ray cluster address ('auto', 'ray://head:10001'); empty = start a local Ray instance.")
    @click.option("--runs-dir", type=click.Path(file_okay=False), default=None, help="Override [sweep] runs_dir.")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Config key for every run, added to [set] (repeatable), e.g. --set train.epochs=1.")
    @click.option("--dry-run", is_flag=True, help="Print the cells and what is left to run; run nothing.")
    @click.option("--no-stage-one", is_flag=True,
                  help="Skip the neighbor-store check: nothing is generated and SEPT cells read sept.generation "
                       "as written (default auto: the one stored generation covering their classes).")
    @click.option("--cold", is_flag=True,
                  help="Start every CPU run in a fresh interpreter instead of forking it from one that has "
                       "imported torch and transformers already (slower; GPU runs always start fresh).")
    @json_option
    def sweep(sweep_file, executor, max_parallel, address, runs_dir, overrides, dry_run, no_stage_one, cold,
              as_json) -> None:
        """Expand a grid into `tune` runs and run each once, one run directory per cell under runs_dir.

        \b
        Finished runs are skipped; a failed run is reported and the others go on; rerunning the sweep
        continues where it stopped (an interrupted run resumes from its checkpoint). Two sweeps on one
        runs folder never run the same cell at once. Before any run, the neighbor store is checked for
        every SEPT run and `generate-neighbors` runs once for the missing classes. Executors: local
        (processes on this machine, one device each) or ray (ray.remote tasks with GPUs where the
        cluster has them). Exit code 1 when a run failed.
        \b
        Examples:
          sept-pipeline sweep --config configs/sweeps/demo.toml
          sept-pipeline sweep --config configs/sweeps/demo.toml --executor ray --max-parallel 2
          sept-pipeline sweep --config configs/sweeps/base2new-palm11-val.toml      # validation, per dataset
          sept-pipeline sweep --config configs/sweeps/base2new-palm11.toml --executor ray --address auto
          sept-pipeline sweep --config configs/sweeps/demo.toml --set train.epochs=1 --dry-run --json
          sept-pipeline report runs/demo-sweep     # then the tables
        """
        from pipeline.config_loader import parse_override
        from pipeline.sweep.runner import plan, run_sweep
        from pipeline.sweep.spec import parse_sweep

        extra = {}
        for text in overrides:
            section, values = next(iter(parse_override(text).items()))
            extra.update({f"{section}.{k}": v for k, v in values.items()})
        spec = parse_sweep(sweep_file, {"executor": executor, "max_parallel": max_parallel,
                                        "runs_dir": runs_dir, "address": address}, extra_set=extra)
        if dry_run:
            cells, todo = plan(spec)
            if as_json:
                emit_json({"runs_dir": str(spec.runs_dir), "cells": [c.name for c in cells],
                           "to_run": [c.name for c in todo]})
            else:
                for c in cells:
                    click.echo(f"{'todo' if c in todo else 'done'}  {c.name}")
                click.echo(f"{len(cells)} cells, {len(todo)} to run, in {spec.runs_dir}")
            return
        echo = (lambda m: click.echo(m, err=True)) if as_json else click.echo
        result = run_sweep(spec, echo=echo, progress=not as_json, stage_one=not no_stage_one, warm=not cold)
        if as_json:
            emit_json(result.summary())
        else:
            s = result.summary()
            click.echo(f"{len(s['ran'])} ran, {len(s['skipped_finished'])} already finished, "
                       f"{len(s['finished_elsewhere'])} finished by another sweep, {len(s['failed'])} failed "
                       f"({s['seconds']:.0f} s); status: {spec.runs_dir / '.sweep' / 'status.json'}")
            for f in s["failed"]:
                click.echo(f"  failed {f['cell']}: {f['message']} (log: {f['log']})")
            if not s["failed"]:
                click.echo(f"next: sept-pipeline report {spec.runs_dir}")
        if result.failed:
            sys.exit(1)
