"""Entry point of the `kubenova` command: one click group, subcommands from sibling modules."""

from __future__ import annotations

import importlib

import click

# module name -> attribute holding a click command or group; imported lazily so that
# `kubenova --help` stays fast and one broken subsystem cannot break the others.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "api": ("kubenova.cli.api", "api"),
    "crds": ("kubenova.cli.crds", "crds"),
    "dashboard": ("kubenova.cli.dashboard", "dashboard"),
    "dev": ("kubenova.cli.dev", "dev"),
    "db": ("kubenova.cli.db", "db"),
    "audit": ("kubenova.cli.audit", "audit_command"),
    "image": ("kubenova.cli.image", "image"),
    "user": ("kubenova.cli.user", "user"),
    "project": ("kubenova.cli.project", "project"),
    "role": ("kubenova.cli.role", "role"),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="kubenova")
def cli() -> None:
    """kubenova: Nova-shaped cloud compute on Kubernetes."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
