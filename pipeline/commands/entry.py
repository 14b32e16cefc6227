"""Running a click command as a program: one-line errors and the exit codes of the CLI.

Exit codes: 0 success, 2 bad input (UserError, usage errors), 1 anything else, 130 interrupted.
Shared by `sept-pipeline` (pipeline/cli.py) and by callers that run one verb directly (a sweep cell runs
`tune` through pipeline/commands/tune.py:main) so both fail the same way.
"""
from __future__ import annotations

import os
import sys

import click

from cache.errors import UserError


def run_click(command: click.Command, argv: list[str] | None, prog_name: str = "sept-pipeline") -> None:
    """Run `command` on `argv` and exit with the CLI's exit code (always raises SystemExit)."""
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
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
        if os.environ.get("SEPT_TRACEBACK"):
            raise
        click.echo(f"error: {type(e).__name__}: {e} (set SEPT_TRACEBACK=1 for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)
