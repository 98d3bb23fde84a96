"""`edgepose watch`: print what edgepose publishes, one line per message."""

from __future__ import annotations

import click


@click.command()
@click.option("--mqtt", "url", metavar="URL", help="Broker, mqtt://[user:pass@]host:port (default from config).")
@click.option("--topic", "topics", multiple=True, metavar="FILTER", help="Topic filter; repeatable [<prefix>/#].")
@click.option("--count", type=click.IntRange(min=1), help="Exit after N messages.")
@click.option("--json", "as_json", is_flag=True, help="Print raw JSON lines {topic, payload} instead of summaries.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config (mqtt: TLS, auth).")
def watch(url, topics, count, as_json, config_file) -> None:
    """Subscribe to edgepose topics and pretty-print poses, events, stats and status."""
    from edgepose.config import load_config
    from edgepose.publish.watch import watch as run_watch

    mqtt = load_config(config_file, {"mqtt.url": url}).mqtt
    try:
        run_watch(mqtt, list(topics) or [f"{mqtt.topic_prefix}/#"], lambda line: click.echo(line), count=count,
                  as_json=as_json)
    except KeyboardInterrupt:
        pass
