"""Configuration: YAML + env + overrides, errors with file line numbers, secrets never shown."""

from __future__ import annotations

import re
import textwrap

import pytest
from click.testing import CliRunner

from edgepose.cli import cli
from edgepose.config import AppConfig, ConfigError, load_config

GOOD = textwrap.dedent(
    """\
    # two cameras sharing one model
    sources:
      - id: door
        source: rtsp://10.0.0.5/stream
      - id: aisle
        source: /videos/aisle.mp4
        realtime: true
    model:
      name: H-2
    mqtt:
      url: mqtts://broker.lan
      username: edge
      password: hunter2
      tls:
        ca_file: /etc/ssl/ca.pem
    tracking:
      distance: iou
    metrics:
      port: 9108
    """
)

BAD = textwrap.dedent(
    """\
    sources:
      - id: door
        source: test
      - id: bad/id
    mqtt:
      url: mqtt://broker
      qos_poses: 3
      keepalive: 2
      tls:
        insecure: true
        certfile: /x.pem
    tracking:
      max_agee: 10
    snapshots: {}
    """
)


def _write(tmp_path, text, name="edgepose.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_work_without_a_file():
    cfg = load_config(None, environ={})
    assert cfg == AppConfig()
    assert [s.id for s in cfg.sources] == ["cam0"]
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.use_tls, cfg.metrics.port, cfg.output) == (
        "127.0.0.1", 1883, False, None, "mqtt")


def test_valid_file(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD), environ={})
    assert [s.id for s in cfg.sources] == ["door", "aisle"] and cfg.sources[1].realtime
    assert (cfg.model.name, cfg.tracking.distance, cfg.metrics.port) == ("H-2", "iou", 9108)
    assert (cfg.mqtt.use_tls, cfg.mqtt.port, cfg.mqtt.resolved_password()) == (True, 8883, "hunter2")


def test_every_problem_reported_with_its_line(tmp_path):
    path = _write(tmp_path, BAD)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert sorted(err.value.problems) == sorted(
        [
            f"{path}:4: sources[1].id: String should match pattern '^[A-Za-z0-9_-]{{1,64}}$'",
            f"{path}:7: mqtt.qos_poses: Input should be 0, 1 or 2",
            f"{path}:8: mqtt.keepalive: Input should be greater than or equal to 5",
            f"{path}:11: mqtt.tls.certfile: unknown key (typo?); `edgepose config show` lists the valid ones",
            f"{path}:13: tracking.max_agee: unknown key (typo?); `edgepose config show` lists the valid ones",
            f"{path}:14: snapshots: unknown key (typo?); `edgepose config show` lists the valid ones",
        ]
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mqtt:\n  url: [1\n", ":3: YAML syntax error"),
        ("- a\n- b\n", ":1: the file must be a mapping"),
        ("mqtt:\n  keepalive: 10\n  keepalive: 20\n", ":3: mqtt.keepalive: key repeated"),
        ("sources:\n  - id: a\n  - id: a\n", ":1: sources: source ids must be unique; repeated: a"),
        ("mqtt:\n  password: x\n  password_file: /p\n", ":1: mqtt: give password or password_file, not both"),
        ("mqtt:\n  url: http://broker\n", ":2: mqtt.url: expected mqtt://host[:port]"),
        ("output: out.csv\n", ":1: output: unknown output 'out.csv'"),
    ],
)
def test_single_problems(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value).startswith(f"{path}{expected}"), str(err.value)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read config file: No such file"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_env_and_overrides_layer_over_the_file(tmp_path):
    path = _write(tmp_path, GOOD)
    env = {
        "EDGEPOSE_MQTT__URL": "mqtt://other:1884",
        "EDGEPOSE_MQTT__TLS__INSECURE": "true",
        "EDGEPOSE_METRICS__PORT": "9200",
        "EDGEPOSE_MQTT__PASSWORD": "1234",  # stays a string
        "EDGEPOSE_DEBUG": "1",  # not a config path: ignored
        "EDGEPOSE_PRECISION_HINT": "f32",
    }
    cfg = load_config(path, {"metrics.port": 9300, "output": "-", "model": {"name": None}}, environ=env)
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls.insecure, cfg.mqtt.resolved_password()) == (
        "other", 1884, True, "1234")
    assert (cfg.metrics.port, cfg.output, cfg.model.name) == (9300, "-", "H-2")  # None override = not given


def test_env_errors_name_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, GOOD), environ={"EDGEPOSE_MQTT__KEEPALIVE": "soon", "EDGEPOSE_TRACKING__X": "1"})
    assert sorted(err.value.problems) == [
        "env EDGEPOSE_MQTT__KEEPALIVE: mqtt.keepalive: Input should be a valid integer, unable to parse string as an "
        "integer",
        "env EDGEPOSE_TRACKING__X: tracking.x: unknown key (typo?); `edgepose config show` lists the valid ones",
    ]


def test_url_credentials_move_out_of_the_url(tmp_path):
    cfg = load_config(None, {"mqtt.url": "mqtt://ann:p%40ss@h:1999"}, environ={})
    assert (cfg.mqtt.url, cfg.mqtt.username, cfg.mqtt.resolved_password()) == ("mqtt://h:1999", "ann", "p@ss")
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    cfg = load_config(None, {"mqtt.password_file": str(secret), "mqtt.username": "u"}, environ={})
    assert cfg.mqtt.resolved_password() == "from-file"


def test_config_check_cli(tmp_path):
    runner = CliRunner()
    bad = _write(tmp_path, BAD)
    result = runner.invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{bad}:7: mqtt.qos_poses: Input should be 0, 1 or 2" in lines
    assert len([line for line in lines if line.startswith(f"{bad}:")]) == 6
    good = _write(tmp_path, GOOD, "good.yaml")
    result = runner.invoke(cli, ["config", "check", str(good)])
    assert result.exit_code == 0 and "OK" in result.output


def test_config_show_masks_secrets(tmp_path):
    result = CliRunner().invoke(
        cli, ["config", "show", str(_write(tmp_path, GOOD))], env={"EDGEPOSE_MQTT__URL": "mqtt://u:topsecret@h"}
    )
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "topsecret" not in result.output
    assert "password: '**********'" in result.output and "url: mqtt://h" in result.output
    assert "id: door" in result.output


def test_env_reaches_into_the_sources_list(tmp_path):
    path = _write(tmp_path, GOOD)
    cfg = load_config(path, environ={"EDGEPOSE_SOURCES__1__SOURCE": "test", "EDGEPOSE_SOURCES__1__REALTIME": "no"})
    assert [(s.id, s.source, s.realtime) for s in cfg.sources] == [
        ("door", "rtsp://10.0.0.5/stream", False), ("aisle", "test", False)]
    with pytest.raises(ConfigError, match=r"^env EDGEPOSE_SOURCES__5__ID: sources has 2 items; '5' is not one"):
        load_config(path, environ={"EDGEPOSE_SOURCES__5__ID": "x"})
    with pytest.raises(ConfigError, match=r"^env EDGEPOSE_SOURCES__0__ID: sources\[0\]\.id: String should match"):
        load_config(path, environ={"EDGEPOSE_SOURCES__0__ID": "a b"})
    # An error inside a list item from the file still points at its line.
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:4: sources\[0\]\.source: Input should be a valid"):
        load_config(_write(tmp_path, GOOD.replace("rtsp://10.0.0.5/stream", "[1]")), environ={})
