"""`edgepose homeassistant`: manage what edgepose announced to Home Assistant."""

from __future__ import annotations

import click


@click.group()
def homeassistant() -> None:
    """Home Assistant MQTT discovery (turned on with `edgepose run --homeassistant`)."""


@homeassistant.command()
@click.argument("source_id")
@click.option("--mqtt", "url", metavar="URL", help="Broker, mqtt://[user:pass@]host:port (default from config).")
@click.option("--prefix", metavar="PREFIX", help="Topic prefix the source published under [edgepose].")
@click.option("--force", is_flag=True, help="Also when the source's status says online.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config (mqtt: TLS, auth, prefixes).")
def forget(source_id, url, prefix, force, config_file) -> None:
    """Remove a retired source: clear its retained discovery configs (Home Assistant deletes its device) and its
    retained topics (status, people, stats, snapshot).

    \b
    Example:
      edgepose homeassistant forget cam0 --mqtt mqtt://broker:1883
    """
    from edgepose.config import load_config
    from edgepose.publish.homeassistant import forget as forget_source

    mqtt = load_config(config_file, {"mqtt": {"url": url, "topic_prefix": prefix}}).mqtt
    result = forget_source(mqtt, source_id, force=force)
    if not result.cleared:
        click.echo(f"nothing retained for source {source_id} under {mqtt.topic_prefix}/ and "
                   f"{mqtt.homeassistant_prefix}/; check the id and --prefix")
        return
    for topic in result.cleared:
        click.echo(f"cleared {topic}")
