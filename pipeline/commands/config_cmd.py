"""`sept-pipeline config show|keys`: print the resolved config or every key with its help."""
from __future__ import annotations

import click

from pipeline.commands.common import config_options, emit_json, json_option


def register(cli) -> None:
    @cli.group("config")
    def config_group() -> None:
        """Inspect configuration.

        \b
        Examples:
          sept-pipeline config show --set train.epochs=5
          sept-pipeline config keys
        """

    @config_group.command("show")
    @config_options(recipe=True)
    @json_option
    def show(cfg, as_json: bool) -> None:
        """Print the resolved config (defaults + recipe + --config + --set) as TOML, or JSON with --json.

        \b
        Examples:
          sept-pipeline config show --config my-experiment.toml --set sept.lam=0.5
          sept-pipeline config show --recipe kgcoop-original
        """
        from pipeline.config_loader import to_toml

        if as_json:
            emit_json(cfg.to_dict())
        else:
            click.echo(to_toml(cfg), nl=False)

    @config_group.command("keys")
    def keys() -> None:
        """List every config key with its default and help text.

        \b
        Examples:
          sept-pipeline config keys | grep sept.
          sept-pipeline config show --json
        """
        from pipeline.config_loader import describe

        for row in describe():
            note = "" if row.identity else " (changes how a run executes, not its results)"
            click.echo(f"{row.section}.{row.key} = {row.default!r}\n    {row.help}{note}")
