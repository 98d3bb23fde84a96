"""`edgepose config check FILE` and `edgepose config show [FILE]`."""

from __future__ import annotations

import click
import yaml

from edgepose.config import ConfigError, config_as_dict, load_config


@click.group()
def config() -> None:
    """Check and print configuration files (YAML; env EDGEPOSE_<SECTION>__<FIELD> overrides)."""


@config.command()
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Validate FILE; print each problem as FILE:LINE: section.field: message (exit 1 if any)."""
    try:
        load_config(file)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem)
        raise SystemExit(1) from None
    click.echo(f"{file}: OK")


@config.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
def show(file: str | None) -> None:
    """Print the effective configuration (defaults + FILE + env), passwords masked."""
    cfg = load_config(file)
    click.echo(yaml.safe_dump(config_as_dict(cfg), sort_keys=False), nl=False)
