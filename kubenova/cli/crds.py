"""`kubenova crds render|check`: keep crds/ in step with the API models."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kubenova import crdgen

DEFAULT_DIR = Path("crds")


@click.group()
def crds() -> None:
    """Generate and check the CustomResourceDefinitions."""


@crds.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=DEFAULT_DIR)
def render(directory: Path) -> None:
    """Write crds/*.yaml from kubenova/api."""
    for path in crdgen.write(directory):
        click.echo(f"wrote {path}")


@crds.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=DEFAULT_DIR)
def check(directory: Path) -> None:
    """Exit non-zero when crds/ differs from what kubenova/api renders."""
    diffs = crdgen.drift(directory)
    if diffs:
        sys.stdout.write("".join(diffs))
        raise click.ClickException(
            f"{len(diffs)} CRD file(s) in {directory} are stale: run `kubenova crds render`"
        )
    click.echo(f"{directory}: CRDs are up to date")
