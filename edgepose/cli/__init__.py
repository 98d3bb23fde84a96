"""The ``edgepose`` command line.

Commands live one group per module under ``edgepose.cli`` and are imported only when invoked, so
``edgepose --help`` is instant and never loads openvino, GStreamer or torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

import click

from edgepose import __version__
from edgepose.errors import EdgeposeError
from edgepose.masking import install_log_masking, mask

# command name -> (module, attribute, one-line help shown by `edgepose --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("edgepose.cli.run", "run", "Capture, infer, group and publish skeletons (the main job)."),
    "models": ("edgepose.cli.models", "models", "List, inspect, download and profile models."),
    "export": ("edgepose.cli.export", "export", "Export an EfficientHRNet variant to OpenVINO IR (train extra)."),
    "quantize": ("edgepose.cli.export", "quantize", "INT8 copy of an IR, calibrated on real images (train extra)."),
    "eval": ("edgepose.cli.eval", "eval_cmd", "COCO keypoint evaluation of a model on an image folder."),
    "watch": ("edgepose.cli.watch", "watch", "Subscribe to edgepose topics and pretty-print them."),
    "config": ("edgepose.cli.config", "config", "Check and print configuration files."),
    "train": ("edgepose.cli.train", "train", "Train EfficientHRNet (train extra)."),
    "dashboard": ("edgepose.cli.dashboard", "dashboard", "Serve the live browser dashboard."),
    "homeassistant": ("edgepose.cli.homeassistant", "homeassistant", "Home Assistant discovery: remove retired sources."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, (mod, _, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            return None

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgepose")
@click.option("--debug", is_flag=True, envvar="EDGEPOSE_DEBUG", help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """edgepose: multi-person pose estimation at the edge.

    \b
    camera/file/RTSP -> GStreamer -> OpenVINO (EfficientHRNet) -> Numba grouping -> MQTT
    Start with:  edgepose run --source test --output -
    """
    ctx.obj = {"debug": debug}
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_masking()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 1."""
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("EDGEPOSE_DEBUG"))
    try:
        cli.main(args=argv, prog_name="edgepose", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EdgeposeError as exc:
        if debug:
            raise
        click.echo(f"Error: {mask(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
