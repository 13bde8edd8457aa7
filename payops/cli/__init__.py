"""The ``payops`` command: a thin layer over the library.

Each module of this package owns the commands of one area and exposes
``register(cli: click.Group)``; they are discovered, so areas never edit a shared file.
Every :class:`~payops.errors.PayopsError` becomes a one-line message and a non-zero exit.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from payops.errors import PayopsError
from payops.text import TerminalGuard, terminal_safe


class PayopsGroup(click.Group):
    """A click group that turns payops errors into one line and an exit code."""

    def invoke(self, ctx: click.Context):
        # Standard output goes through a guard: names, notes and query results from Stripe or
        # a user are shown with their control characters escaped, never run by the terminal.
        real = sys.stdout
        sys.stdout = TerminalGuard(real)
        try:
            return super().invoke(ctx)
        except PayopsError as exc:
            click.secho(f"Error: {terminal_safe(exc.message)}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        finally:
            sys.stdout = real

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)


@click.group(cls=PayopsGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="payops")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """payops: Stripe payments operations in DuckDB.

    Sync Stripe, review and process refunds, compute metrics and publish reports.
    Without a command, shows the status overview (`payops status`).
    """
    if ctx.invoked_subcommand is None:
        from payops.cli.core import status

        ctx.invoke(status)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(cli)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="payops", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
