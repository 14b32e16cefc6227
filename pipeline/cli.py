"""`sept-pipeline`: the command-line face. One click group; each verb lives in pipeline/commands/.

Exit codes: 0 success, 2 bad input (UserError, usage errors), 1 anything else.
Importing this module must stay cheap: no torch, no vllm, no faiss at import time, so that a warm
`generate-neighbors` rerun that needs nothing finishes in a fraction of a second.
"""
from __future__ import annotations

import click

from pipeline.commands import backbones, config_cmd, datasets, evaluate, inspect_cmd, neighbors, report, sweep, tune
from pipeline.commands.entry import run_click


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
    run_click(cli, argv)


if __name__ == "__main__":
    main()
