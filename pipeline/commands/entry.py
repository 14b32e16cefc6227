"""Running a click command as a program: one-line errors and the exit codes of the CLI (pipeline/exits.py).

Exit codes: 0 success, 2 bad input (UserError, usage errors), 1 anything else, 130 interrupted.
"""
from __future__ import annotations

import sys

import click

from pipeline.exits import BAD_INPUT, FAILED, OK, failure_exit


def run_click(command: click.Command, argv: list[str] | None, prog_name: str = "sept-pipeline") -> None:
    """Run `command` on `argv` and exit with the CLI's exit code (always raises SystemExit)."""
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(FAILED)
    except click.ClickException as e:  # usage errors: bad option, missing argument
        e.show()
        sys.exit(BAD_INPUT)
    except SystemExit:
        raise
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the last line of defence prints one line
        sys.exit(failure_exit(e))
    sys.exit(OK)
