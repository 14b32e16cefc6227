"""`sept-pipeline inspect RUN`: what a learned prompt says, with the run's config and fingerprints."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import emit_json, json_option


def register(cli) -> None:
    @cli.command("inspect")
    @click.argument("run", type=click.Path(path_type=Path))
    @click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True,
                  help="Nearest vocabulary tokens listed per context vector.")
    @click.option("--backbone", default=None,
                  help="Load the backbone from here instead of the run's backbone.id (same weights, moved folder).")
    @json_option
    def inspect(run, k, backbone, as_json) -> None:
        """For each learned context vector of RUN, its nearest vocabulary tokens; plus config and fingerprints.

        \b
        Distances are Euclidean in the text tower's token-embedding space (CoOp's reading of a prompt). A
        learned vector is seldom close to any word: read the distances, not only the words. Uses the run's
        final prompt.safetensors, or the latest checkpoint of an unfinished run; the backbone must be the
        one the run trained (its fingerprint is checked).
        \b
        Examples:
          sept-pipeline inspect runs/demo-sweep/demo-base2new-coop-sept-4shot-seed1
          sept-pipeline inspect runs/coop-sept -k 10 --json
        """
        from pipeline.report.inspect import inspect_run, render_text

        info = inspect_run(run, k=k, backbone=backbone)
        if as_json:
            emit_json(info)
        else:
            click.echo(render_text(info))
