"""``edgepose models profile``: every local model on each device, with the decoder's cost included."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from edgepose.errors import EdgeposeError
from edgepose.registry import local_models


def profile_local(device: str | None, frame_size: tuple[int, int], *, iterations: int = 10, reprofile: bool = False,
                  plot: str | None = None) -> tuple[str, dict]:
    """Profile every local model on each device; returns (text table, JSON-ready dict)."""
    from tqdm import tqdm

    from edgepose.registry.profiler import available_devices, cpu_isa, format_table, profile_models

    local = local_models()
    if not local:
        raise EdgeposeError("no local models to profile; export one (edgepose export) or pull one "
                            "(edgepose models pull human-pose-estimation-0005)")
    devices = [d.strip() for d in device.split(",")] if device else available_devices()
    from edgepose import decode

    tables, out = [], {}
    for dev in devices:
        with tqdm(total=len(local), desc=f"profiling on {dev}", unit="model", leave=False) as bar:
            profiles = profile_models(local, device=dev, frame_size=frame_size, reprofile=reprofile,
                                      iterations=iterations, postprocess=decode.decode, progress=lambda _: bar.update())
        tables.append(f"{dev} ({cpu_isa()}), frame {frame_size[0]}x{frame_size[1]}\n{format_table(profiles)}")
        out[dev] = {name: asdict(p) for name, p in profiles.items()}
        if plot:
            _plot(profiles, Path(plot), dev)
    return "\n\n".join(tables), out


def _plot(profiles, path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgepose.registry.profiler import expected_ap

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in profiles.values():
        ax.scatter(p.effective_fps, expected_ap(p.model))
        ax.annotate(p.model, (p.effective_fps, expected_ap(p.model)), fontsize=8)
    ax.set_xlabel("frames per second (with decoding)")
    ax.set_ylabel("expected COCO AP (%)")
    ax.set_title(f"edgepose models on {device}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
