"""`kubenova crds render|check`: keep crds/ (and the Helm chart's copy) in step with the models."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kubenova import crdgen

# The chart carries a generated copy, not a symlink: `helm package`, OCI charts and Argo CD
# then see ordinary files, and `check` proves both copies match the models.
DEFAULT_DIRS = (Path("crds"), Path("charts/kubenova/crds"))

dirs_option = click.option(
    "--dir",
    "directories",
    type=click.Path(path_type=Path),
    multiple=True,
    default=DEFAULT_DIRS,
    show_default=True,
    help="Folder to write/check (repeatable).",
)


@click.group()
def crds() -> None:
    """Generate and check the CustomResourceDefinitions."""


@crds.command()
@dirs_option
def render(directories: tuple[Path, ...]) -> None:
    """Write crds/*.yaml (and the chart's copy) from kubenova/api."""
    for directory in directories:
        for path in crdgen.write(directory):
            click.echo(f"wrote {path}")


@crds.command()
@dirs_option
def check(directories: tuple[Path, ...]) -> None:
    """Exit non-zero when a CRD folder differs from what kubenova/api renders."""
    stale = 0
    for directory in directories:
        diffs = crdgen.drift(directory)
        if diffs:
            sys.stdout.write("".join(diffs))
            stale += len(diffs)
            click.echo(f"{directory}: {len(diffs)} CRD file(s) are stale", err=True)
        else:
            click.echo(f"{directory}: CRDs are up to date")
    if stale:
        raise click.ClickException(f"{stale} stale CRD file(s): run `kubenova crds render`")
