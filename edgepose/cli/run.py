"""``edgepose run``: the main job."""

from __future__ import annotations

import re
from pathlib import Path

import click


def default_source_id(source: str) -> str:
    """A topic-safe id: cam<N> for cameras, the file stem for files, the host for URLs, 'test' for the pattern."""
    if source.isdigit():
        return f"cam{source}"
    if "://" in source:
        stem = re.sub(r"^[a-z]+://([^@/]*@)?", "", source).split("/")[0].split(":")[0]
    else:
        stem = Path(source).stem
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:48] or "source"


@click.command(context_settings={"max_content_width": 100})
@click.option("--camera", type=int, metavar="N", help="Capture from /dev/videoN (V4L2).")
@click.option("--source", metavar="SRC", help="Video file, file:// or http(s):// URI, rtsp:// URL, or 'test' (pattern).")
@click.option("--source-id", metavar="ID", help="Name in MQTT topics [default: cam<N>, the file name, or 'test'].")
@click.option("--pipeline", metavar="NAME|STRING", help="GStreamer template from pipelines/ or a custom launch string.")
@click.option("--realtime", is_flag=True, default=None, help="Read files at their own frame rate, dropping late frames.")
@click.option("--loop", is_flag=True, help="Start a video file again at its end (runs until stopped).")
@click.option("--model", "model_name", metavar="M",
              help="'auto' (default: the most accurate local model that meets --target-fps here, chosen by "
                   "profiling), a variant (H0..H-4), a model name (see `edgepose models list`) or an .xml path.")
@click.option("--target-fps", type=float, help="Frame rate --model auto must sustain [default: 15].")
@click.option("--max-latency", "max_latency_ms", type=float, metavar="MS", help="Choose by p90 latency instead of fps.")
@click.option("--explain", is_flag=True, help="With --model auto: print the profile table and the choice, then exit.")
@click.option("--reprofile", is_flag=True, help="With --model auto: measure again even if a cached profile is valid.")
@click.option("--device", help="OpenVINO device: CPU, GPU, NPU or AUTO [default: CPU].")
@click.option("--backend", type=click.Choice(["openvino", "onnxruntime"]),
              help="Inference runtime [default: openvino]; onnxruntime runs .onnx exports (TensorRT/CUDA on Jetson).")
@click.option("--mode", type=click.Choice(["latency", "throughput"]),
              help="latency: one synchronous request; throughput: async requests overlap capture and decoding.")
@click.option("--mqtt", "mqtt_url", metavar="URL", help="mqtt[s]://[user:pass@]host:port [default: mqtt://127.0.0.1:1883].")
@click.option("--homeassistant", is_flag=True, default=None,
              help="Announce every source to Home Assistant (MQTT discovery): people, occupancy, entered/left, "
                   "snapshot camera, diagnostics.")
@click.option("--output", metavar="OUT", help="mqtt, - (JSON lines on stdout), FILE.jsonl, or a comma list [default: mqtt].")
@click.option("--save", type=click.Path(dir_okay=False), help="Write an annotated video (.mp4).")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after N frames per source.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus /metrics and /healthz here.")
@click.option("--no-track", is_flag=True, help="No tracking: track_id stays -1 and no events are published.")
@click.option("--no-snapshot", is_flag=True, help="Publish no JPEG snapshots (privacy-sensitive sites).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML configuration file.")
@click.option("-q", "--quiet", is_flag=True, help="No periodic status line on stderr.")
def run(camera, source, source_id, pipeline, realtime, loop, model_name, target_fps, max_latency_ms, explain, reprofile,
        device, backend, mode, mqtt_url, homeassistant, output, save, max_frames, metrics_port, no_track, no_snapshot,
        config_file, quiet):
    """Capture frames, estimate poses and publish skeletons.

    \b
    Examples:
      edgepose run --camera 0 --model auto
      edgepose run --source rtsp://cam.local/stream --mqtt mqtt://broker:1883
      edgepose run --source walk.mp4 --output - --max-frames 100
    """
    from edgepose.config import load_config
    from edgepose.service import run as service

    if camera is not None and source is not None:
        raise click.UsageError("give --camera or --source, not both")
    overrides: dict = {"model": {"name": model_name, "target_fps": target_fps, "max_latency_ms": max_latency_ms},
                       "inference": {"device": device, "mode": mode, "backend": backend}, "mqtt": {"url": mqtt_url, "homeassistant": homeassistant},
                       "output": output, "save": save, "metrics": {"port": metrics_port}}
    if camera is not None or source is not None:
        src = str(camera) if camera is not None else source
        overrides["sources"] = [{"id": source_id or default_source_id(src), "source": src,
                                 "pipeline": pipeline, "realtime": bool(realtime), "loop": loop}]
    if no_track:
        overrides["tracking"] = {"enabled": False}
    if no_snapshot:
        overrides["snapshot"] = {"enabled": False}
    cfg = load_config(config_file, overrides)
    if explain:
        click.echo(service.explain(cfg, reprofile=reprofile))
        return
    final = service.run(cfg, max_frames=max_frames, status=not quiet, reprofile=reprofile)
    if not quiet:
        for sid, fig in final.items():
            click.echo(f"{sid}: {fig['frames']} frames, {fig['fps']:.1f} fps, dropped {fig['dropped']}", err=True)
