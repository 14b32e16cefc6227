"""`sept-pipeline`: the command-line face. One click group; each verb lives in pipeline/commands/.

Exit codes: 0 success, 2 bad input (UserError, usage errors), 1 anything else.
Importing this module must stay cheap: no torch, no vllm, no faiss at import time, so that a warm
`generate-neighbors` rerun that needs nothing finishes in a fraction of a second.
"""
from __future__ import annotations

import sys

import click

from cache.errors import UserError
from pipeline.commands import backbones, config_cmd, datasets, evaluate, inspect_cmd, neighbors, report, sweep, tune


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="sept-pipeline")
def cli() -> None:
    """SEPT: semantically expanded prompt tuning for audio-language models.

    \b
    Stage one writes semantic neighbors into a cached store; stage two tunes prompts with them.
    \b
      sept-pipeline datasets prepare demo --root data/
      sept-pipeline backbones make-random --size tiny --seed 0 --out models/tiny-clap
      sept-pipeline evaluate --method zeroshot --dataset demo --data-root data/ --backbone models/tiny-clap --out runs/zs
      sept-pipeline generate-neighbors --dataset demo --backbone models/tiny-clap
      sept-pipeline tune --dataset demo --data-root data/ --method coop --sept --protocol base2new \\
          --backbone models/tiny-clap --out runs/coop-sept
    """


for module in (datasets, backbones, evaluate, neighbors, tune, sweep, report, inspect_cmd, config_cmd):
    module.register(cli)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="sept-pipeline", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:  # usage errors: bad option, missing argument
        e.show()
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the last line of defence prints one line, exit 1
        import os

        if os.environ.get("SEPT_TRACEBACK"):
            raise
        click.echo(f"error: {type(e).__name__}: {e} (set SEPT_TRACEBACK=1 for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
