"""`sept-pipeline config show|keys|recipes`: the resolved config, every key with its help, the named recipes."""
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
          sept-pipeline config recipes
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

    @config_group.command("recipes")
    @json_option
    def recipes(as_json: bool) -> None:
        """List the named training recipes (configs/recipes/NAME.toml) with the source each cites.

        A recipe sets how an original trained (optimizer, schedule, epochs, batch, context, precision, tower
        mode, data handling); `tune --recipe NAME` or a sweep's recipe axis picks one. "variants" are the
        methods for which the recipe sets other values ([for_method.M] tables: the original trained them
        otherwise).

        \b
        Examples:
          sept-pipeline config recipes
          sept-pipeline config show --recipe dept-original --set method.name=kgcoop-dept
        """
        from pipeline.config_loader import recipe_methods, recipe_names, recipe_record

        rows = [{**recipe_record(n), "variants": recipe_methods(n)} for n in recipe_names()]
        if as_json:
            emit_json(rows)
            return
        for r in rows:
            variants = f"  [variants: {', '.join(r['variants'])}]" if r["variants"] else ""
            click.echo(f"{r['name']}{variants}\n    {r['source']}")

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
