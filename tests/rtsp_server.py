"""A real gst-rtsp-server on 127.0.0.1 for tests and the fault soak: ``python tests/rtsp_server.py PORT``.

Serves ``rtsp://127.0.0.1:PORT/cam``: H.264 (x264enc) of the live SMPTE pattern, 320x240 at 15 fps.
SIGUSR1 toggles a stall: the server stays up and keeps the session, but no frame leaves it until the next
SIGUSR1 (a valve before the encoder drops them), like a camera whose sensor pipeline hung.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from pathlib import Path

LAUNCH = (
    "( videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! valve name=valve drop={drop} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
    "! rtph264pay name=pay0 pt=96 )"
)


def start(port: int) -> subprocess.Popen:
    """Start the server as a child process (the caller waits for the port and terminates it)."""
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(port)], stderr=subprocess.PIPE)


def main(port: str) -> None:
    ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    state = {"drop": False, "valves": []}
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=port)
    factory = GstRtspServer.RTSPMediaFactory(shared=True)
    factory.set_launch(LAUNCH.format(drop="false"))

    def configure(_factory, media):
        valve = media.get_element().get_by_name("valve")
        valve.set_property("drop", state["drop"])
        state["valves"].append(valve)

    def toggle():
        state["drop"] = not state["drop"]
        for valve in state["valves"]:
            valve.set_property("drop", state["drop"])
        return GLib.SOURCE_CONTINUE

    factory.connect("media-configure", configure)
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, toggle)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(sys.argv[1])
