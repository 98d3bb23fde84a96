"""HTTP server of the dashboard: the static page from the package and ``/config.json``, nothing else.

The page itself holds no settings and no secrets. It fetches ``/config.json`` at load time: the broker's
WebSocket URL, the topic prefix, the credentials of the broker user it should log in as (when configured), and
the pose contract (joint names, skeleton, palette) so the browser draws exactly what ``edgepose.draw`` draws.
Anyone who can open the page can read those credentials: give the page a read-only broker user (see
deploy/README.md, "Dashboard user"), and keep the dashboard on 127.0.0.1 or behind the site's access control.

Two guards protect the page and its config: the Host header must name this machine (localhost, an IP address,
its host name or ``dashboard.allowed_hosts``), so a foreign web page cannot reach it through DNS rebinding; and
bound beyond loopback, every request needs the access token (``?token=`` once, then a same-site cookie, or
``Authorization: Bearer``), 401 without. Without ``dashboard.token`` a random one is made and printed at start.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
import secrets
import signal
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from edgepose.config import DashboardConfig
from edgepose.draw import MIN_OPACITY, PALETTE
from edgepose.errors import EdgeposeError
from edgepose.types import JOINT_NAMES, SKELETON

log = logging.getLogger(__name__)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# The page talks to the broker (ws:/wss:) and draws snapshots from blob: URLs; nothing else is allowed to run.
_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def page_config(config: DashboardConfig, topic_prefix: str) -> dict:
    """What ``/config.json`` holds: broker URL, prefix, optional credentials and the pose contract."""
    return {
        "mqtt_ws": config.mqtt_ws,
        "topic_prefix": topic_prefix,
        "username": config.username,
        "password": config.password.get_secret_value() if config.password is not None else None,
        "joints": list(JOINT_NAMES),
        "skeleton": [list(limb) for limb in SKELETON],
        "palette": list(PALETTE),
        "min_opacity": MIN_OPACITY,
    }


COOKIE = "edgepose_token"


def is_loopback(host: str) -> bool:
    """True for a bind address only this machine can reach."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_names(config: DashboardConfig) -> set[str]:
    """Host names a browser may use for the page (IP addresses are always fine: they cannot be rebound)."""
    names = {"localhost", socket.gethostname(), socket.getfqdn(), config.host, *config.allowed_hosts}
    return {n.lower().rstrip(".") for n in names if n}


def host_allowed(header: str | None, names: set[str]) -> bool:
    """Whether a Host header names this server: an IP address or one of ``names`` (port ignored)."""
    if not header:
        return False
    host = header.strip()
    host = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in names


def _static_files() -> dict[str, tuple[bytes, str]]:
    """URL path -> (content, type) for every file of static/, read once."""
    files = {}
    for entry in resources.files("edgepose.dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            files["/" + entry.name] = (entry.read_bytes(), _TYPES[suffix])
    if "/index.html" not in files:
        raise EdgeposeError("the dashboard's static files are missing from the installation; reinstall edgepose")
    files["/"] = files["/index.html"]
    return files


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "edgepose-dashboard"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._respond(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(head=True)

    def _respond(self, head: bool) -> None:
        if not host_allowed(self.headers.get("Host"), self.server.host_names):
            # A page from another site that resolved its own name to us (DNS rebinding) gets nothing.
            self.send_error(HTTPStatus.FORBIDDEN, "unknown Host header; add it to dashboard.allowed_hosts")
            return
        parts = urlsplit(self.path)
        path = parts.path
        token_in_query = (parse_qs(parts.query).get("token") or [None])[0]
        if not self._authorised(token_in_query):
            self.send_error(HTTPStatus.UNAUTHORIZED, "open the URL with ?token=... printed at start")
            return
        if path == "/config.json":
            body, ctype = self.server.config_json, "application/json"
        elif path in self.server.files:
            body, ctype = self.server.files[path]
        else:
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        # config.json may change with a restart; the page is tiny: never serve stale copies.
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if token_in_query is not None:
            # Scripts and config.json load without the query: a same-site, script-proof cookie carries the token.
            self.send_header("Set-Cookie", f"{COOKIE}={self.server.token}; Path=/; HttpOnly; SameSite=Strict")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _authorised(self, token_in_query: str | None) -> bool:
        expected = self.server.token
        if expected is None:
            return True
        cookie = SimpleCookie(self.headers.get("Cookie") or "").get(COOKIE)
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        given = [token_in_query, cookie.value if cookie else None, bearer or None]
        return any(t is not None and hmac.compare_digest(t.encode(), expected.encode()) for t in given)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


class DashboardServer(ThreadingHTTPServer):
    """The dashboard's HTTP server, bound at construction (EdgeposeError if the port is taken).

    ``url`` is where a browser on this machine opens it; ``serve_forever()`` / ``shutdown()`` as usual, or
    ``start()`` to serve from a daemon thread.
    """

    daemon_threads = True
    # Closing must not wait for a browser's open connection: the page keeps no state on the server.
    block_on_close = False

    def __init__(self, config: DashboardConfig, topic_prefix: str = "edgepose"):
        self.files = _static_files()
        self.config_json = json.dumps(page_config(config, topic_prefix)).encode()
        self.host_names = host_names(config)
        # Beyond loopback every request needs the token; one nobody configured is made up and printed at start.
        self.token_generated = config.token is None and not is_loopback(config.host)
        self.token = (config.token.get_secret_value() if config.token is not None
                      else secrets.token_urlsafe(18) if self.token_generated else None)
        try:
            super().__init__((config.host, config.port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EdgeposeError(
                    f"port {config.port} on {config.host} is already in use; pass another --port"
                ) from None
            raise EdgeposeError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}; check --host") from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{shown}:{port}/"

    @property
    def login_url(self) -> str:
        """``url`` with the generated token (what to open in a browser); ``url`` when the token was configured."""
        return f"{self.url}?token={self.token}" if self.token_generated else self.url

    def start(self) -> threading.Thread:
        """Serve from a daemon thread (tests, embedding); stop with ``shutdown()`` then ``server_close()``."""
        thread = threading.Thread(target=self.serve_forever, name="edgepose-dashboard", daemon=True)
        thread.start()
        return thread


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(
    config: DashboardConfig | None = None,
    topic_prefix: str = "edgepose",
    *,
    on_ready: Callable[[str], None] | None = None,
    **fields,
) -> None:
    """Serve the dashboard until interrupted. fields override ``config`` (``host=``, ``port=``, ``mqtt_ws=``...).

    on_ready(url) runs once the port is bound, before serving (print the URL there; it carries the generated
    access token when one was made). EdgeposeError if the port is
    taken; SIGINT and SIGTERM (systemd, docker stop) raise KeyboardInterrupt after the socket is closed.
    """
    config = DashboardConfig.model_validate({**(config or DashboardConfig()).model_dump(), **fields})
    server = DashboardServer(config, topic_prefix)
    if threading.current_thread() is threading.main_thread():
        # Explicit handlers: a process started from a non-interactive shell in the background inherits an
        # ignored SIGINT, and SIGTERM would otherwise end it without closing the socket.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupt)
    try:
        if on_ready is not None:
            on_ready(server.login_url)
        server.serve_forever()
    finally:
        server.server_close()
