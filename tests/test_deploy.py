"""Static checks of the deployment files: systemd unit, compose file, Dockerfiles, example config, broker config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel

from conftest import REPO, Mosquitto
from edgepose.cli import cli
from edgepose.config import AppConfig, load_config

DEPLOY = REPO / "deploy"
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "jetson" / "Dockerfile"]


def _section_model(annotation) -> type[BaseModel] | None:
    """The pydantic model behind a field: ``TlsConfig`` or the item model of ``list[SourceConfig]``."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def missing_options(model: type[BaseModel], data, where: str = "") -> list[str]:
    """Every field of ``model`` (recursively, lists item by item) that ``data`` (raw YAML) does not spell out."""
    items = data if isinstance(data, list) else [data]
    missing = []
    for item in items:
        for name, field in model.model_fields.items():
            path = f"{where}{name}"
            if not isinstance(item, dict) or name not in item:
                missing.append(path)
                continue
            sub = _section_model(field.annotation)
            if sub is not None:
                missing += missing_options(sub, item[name], path + ".")
    return sorted(set(missing))


def test_example_config_covers_every_option():
    path = DEPLOY / "config.example.yaml"
    cfg = load_config(path, environ={})
    assert isinstance(cfg, AppConfig)
    raw = yaml.safe_load(path.read_text())
    assert missing_options(AppConfig, raw) == []
    # The checker sees nested sections and list items: a file lacking one nested key is reported.
    del raw["mqtt"]["tls"]["insecure"], raw["sources"][0]["realtime"]
    assert missing_options(AppConfig, raw) == ["mqtt.tls.insecure", "sources.realtime"]


def test_example_config_passes_config_check():
    result = CliRunner().invoke(cli, ["config", "check", str(DEPLOY / "config.example.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(": OK")


def test_systemd_unit_verifies_clean(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = (DEPLOY / "edgepose.service").read_text()
    for key in ("DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=edgepose", "CacheDirectory=edgepose",
                "Restart=on-failure", "Type=notify", "NotifyAccess=main", "WatchdogSec=60"):
        assert re.search(rf"^{re.escape(key)}$", unit, re.M), key
    # verify also checks that ExecStart exists; point it at this checkout's edgepose instead of /opt/edgepose.
    exe = REPO / ".venv" / "bin" / "edgepose"
    if not exe.exists():
        exe = Path(shutil.which("edgepose") or pytest.skip("the edgepose command is not installed"))
    (tmp_path / "edgepose.service").write_text(unit.replace("/opt/edgepose/bin/edgepose", str(exe)))
    result = subprocess.run([analyze, "verify", str(tmp_path / "edgepose.service")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def compose_problems(doc) -> list[str]:
    """A minimal schema check of a compose file: services with image/build, restart, volumes, devices."""
    problems = []
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        return ["no services mapping"]
    named = set(doc.get("volumes") or {})
    for name, svc in doc["services"].items():
        if not isinstance(svc, dict):
            problems.append(f"{name}: not a mapping")
            continue
        if "image" not in svc and "build" not in svc:
            problems.append(f"{name}: neither image nor build")
        if isinstance(svc.get("build"), dict) and "context" not in svc["build"]:
            problems.append(f"{name}: build without context")
        if svc.get("restart") not in ("always", "unless-stopped", "on-failure"):
            problems.append(f"{name}: restart policy {svc.get('restart')!r}")
        for dep in svc.get("depends_on") or []:
            if dep not in doc["services"]:
                problems.append(f"{name}: depends on unknown service {dep}")
        for spec in svc.get("volumes") or []:
            source = str(spec).split(":")[0]
            if not source.startswith((".", "/", "$")) and source not in named:
                problems.append(f"{name}: volume {source} is not declared under volumes")
        for spec in svc.get("devices") or []:
            if not str(spec).startswith("/dev/"):
                problems.append(f"{name}: device {spec} is not a /dev path")
    return problems


def test_compose_file_validates(tmp_path):
    path = DEPLOY / "docker-compose.yml"
    doc = yaml.safe_load(path.read_text())
    assert compose_problems(doc) == []
    services = doc["services"]
    assert services["edgepose"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (path.parent / services["edgepose"]["build"]["context"] / "deploy" / "Dockerfile").exists()
    assert {"/dev/video0:/dev/video0", "/dev/dri:/dev/dri"} <= set(services["edgepose"]["devices"])
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto")
    mounted = [v.split(":")[0] for v in services["mosquitto"]["volumes"]]
    assert "./mosquitto.conf" in mounted and (DEPLOY / "mosquitto.conf").exists()
    config_mount = next(v for v in services["edgepose"]["volumes"] if v.endswith("/etc/edgepose/config.yaml:ro"))
    assert "./config.example.yaml" in config_mount
    # The checker itself rejects what it must.
    assert compose_problems({"services": {"x": {"devices": ["video0"], "volumes": ["data:/d"]}}}) == [
        "x: neither image nor build", "x: restart policy None", "x: volume data is not declared under volumes",
        "x: device video0 is not a /dev path"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        result = subprocess.run([docker, "compose", "-f", str(path), "config", "--quiet"], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_dockerfiles_install_with_the_shared_script(dockerfile):
    text = dockerfile.read_text()
    runs = re.findall(r"^RUN (.*)$", text, re.M)
    assert any("install.sh" in r and "--system-only" in r for r in runs)
    assert any("install.sh" in r and "--no-editable" in r and "--venv /opt/edgepose" in r for r in runs)
    for forbidden in ("apt-get install", "pip install -e", "torch"):
        assert forbidden not in text.replace("no torch", ""), f"{dockerfile.name} does {forbidden!r} itself"
    assert re.search(r"^USER edgepose$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", text, re.M)
    copied = re.findall(r"^COPY (?!--from)(\S+)", text, re.M)
    assert copied and all((REPO / src).exists() for src in copied), copied
    # The install script accepts every option the Dockerfiles pass it.
    for options in re.findall(r"install\.sh((?: --[a-z-]+(?: \S+)?)+)", text):
        for opt in re.findall(r"--[a-z-]+", options):
            assert re.search(rf"^\s+{re.escape(opt)}\)", (DEPLOY / "install.sh").read_text(), re.M), opt


def test_install_warms_the_decoder_cache(tmp_path):
    """install.sh's warm step, run as the systemd instructions run it, leaves in the unit's NUMBA_CACHE_DIR a cache
    from which a process with the unit's environment loads the decoder without compiling (Numba's own hit/miss
    counts, not a timing). Numba reads only the directory it would write, so any other directory means a JIT on
    the service's first frame. The Dockerfiles warm with their own NUMBA_CACHE_DIR set."""
    for path in DOCKERFILES:
        text = path.read_text()
        assert "NUMBA_CACHE_DIR=" in text and "from edgepose.decode import warm; " in text, path
    unit = (DEPLOY / "edgepose.service").read_text()
    unit_cache = re.search(r"^Environment=.*\bNUMBA_CACHE_DIR=(\S+)", unit, re.M).group(1).replace("%C", "/var/cache")
    documented = [unit, (DEPLOY / "README.md").read_text()]
    for text in documented:
        installs = re.findall(r"deploy/install\.sh --venv /opt/edgepose[^`\n]*(?:\n\s+--[^`\n]*)?", text)
        assert installs, "no systemd install command documented"
        for command in installs:
            assert f"--numba-cache {unit_cache}" in command, command
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"  # this interpreter, as the install's venv (a symlink would lose its venv)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    cache = tmp_path / unit_cache.lstrip("/")  # the unit's directory, under tmp_path
    warm_step = subprocess.run(["sed", "-n", "/^warm_decoder() {/,/^}/p", str(DEPLOY / "install.sh")],
                               capture_output=True, text=True, check=True).stdout
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("NUMBA_CACHE_DIR", None)
    subprocess.run(["bash", "-c", f"set -eu; {warm_step}\nVENV={venv} NUMBA_CACHE={cache} warm_decoder"], env=env,
                   check=True, timeout=600, capture_output=True)
    service_env = dict(env, NUMBA_CACHE_DIR=str(cache))
    probe = ("import numpy as np; from edgepose.decode import group, grouping; "
             "group(np.random.default_rng(0).random((17, 30, 20), dtype=np.float32), np.zeros((17, 30, 20))); "
             "s = grouping.group_arrays.stats; print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))")
    out = subprocess.run([sys.executable, "-c", probe], env=service_env, check=True, capture_output=True, text=True,
                         timeout=600).stdout.split()
    assert (int(out[0]), int(out[1])) == (1, 0), f"cache hits, misses: {out}"


def test_runtime_package_list_has_no_build_tools():
    script = DEPLOY / "install.sh"
    listed = subprocess.run(
        ["bash", "-c", f'source <(sed -n "1,/^if \\[ \\"\\$SYSTEM\\" = 1 \\]/p" {script} | head -n -1); '
                       'echo "${PACKAGES[@]}"', "install.sh", "--runtime"],
        capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    assert "gstreamer1.0-plugins-good" in listed and "libgirepository-1.0-1" in listed
    assert not [p for p in listed if p.endswith("-dev") or p in ("gcc", "mosquitto", "chromium")], listed


def test_broker_config_starts_mosquitto(tmp_path):
    """deploy/mosquitto.conf is a configuration this Mosquitto accepts (its listener moved to a free local port;
    an unknown or misspelt option would stop the broker at start-up)."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # Mosquitto drops root privileges before it writes its database
    conf = (DEPLOY / "mosquitto.conf").read_text()
    assert re.search(r"^listener 1883$", conf, re.M)
    conf = re.sub(r"^listener 1883$", "", conf, flags=re.M)  # the fixture's own listener takes its place
    conf = conf.replace("persistence_location /mosquitto/data/", f"persistence_location {data}/")
    broker = Mosquitto(tmp_path, extra_conf=conf).start()
    try:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        assert client.connect("127.0.0.1", broker.port) == 0
        client.disconnect()
    finally:
        broker.stop()


def test_broker_acl_gives_the_dashboard_user_read_only_access(tmp_path):
    """deploy/mosquitto.acl on a real Mosquitto: the dashboard user receives what nodes publish and cannot publish."""
    import paho.mqtt.client as mqtt

    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "edgepose", "node-pw"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "dashboard", "page-pw"], check=True)
    broker = Mosquitto(tmp_path, extra_conf=f"user root\nallow_anonymous false\npassword_file {passwd}\n"
                                            f"acl_file {DEPLOY / 'mosquitto.acl'}\n").start()
    received: list[tuple[str, bytes]] = []
    clients = []
    try:
        def client(user: str, password: str, subscribe: bool = False):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            c.username_pw_set(user, password)
            if subscribe:
                c.on_message = lambda cl, ud, msg: received.append((msg.topic, msg.payload))
            assert c.connect("127.0.0.1", broker.port) == 0
            c.loop_start()
            clients.append(c)
            return c

        page = client("dashboard", "page-pw", subscribe=True)
        page.subscribe("edgepose/#", qos=1)
        node = client("edgepose", "node-pw")
        time.sleep(0.5)
        page.publish("edgepose/door/status", b"forged", qos=1).wait_for_publish(5)
        node.publish("edgepose/door/status", b"online", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert received == [("edgepose/door/status", b"online")]  # the page's own publish was refused
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()
