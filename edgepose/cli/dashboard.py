"""`edgepose dashboard`: serve the live browser dashboard."""

from __future__ import annotations

import click


@click.command()
@click.option("--mqtt-ws", metavar="URL", help="Broker's websockets listener as browsers reach it [ws://127.0.0.1:9001].")
@click.option("--port", type=click.IntRange(0, 65535), help="HTTP port [8080].")
@click.option("--host", help="Bind address; 0.0.0.0 serves the whole network [127.0.0.1].")
@click.option("--prefix", metavar="PREFIX", help="Topic prefix the edge nodes publish under [edgepose].")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML config: dashboard section (broker user for the page), mqtt.topic_prefix.")
def dashboard(mqtt_ws, port, host, prefix, config_file) -> None:
    """Serve a page showing every edge node's skeletons, people count, fps and events, live over MQTT.

    The broker needs a websockets listener (Mosquitto: `listener 9001` + `protocol websockets`, see
    deploy/mosquitto-websockets.conf). Stop with Ctrl-C.
    """
    from edgepose.config import load_config
    from edgepose.dashboard.server import serve

    cfg = load_config(config_file, {"dashboard": {"mqtt_ws": mqtt_ws, "port": port, "host": host},
                                    "mqtt": {"topic_prefix": prefix}})
    topics = f"{cfg.mqtt.topic_prefix}/+/#"
    try:
        serve(cfg.dashboard, cfg.mqtt.topic_prefix, on_ready=lambda url: click.echo(
            f"edgepose dashboard on {url} (broker {cfg.dashboard.mqtt_ws}, topics {topics}); Ctrl-C stops it"))
    except KeyboardInterrupt:
        pass
