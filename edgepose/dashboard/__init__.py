"""The live browser dashboard: a static page that subscribes to edgepose's MQTT topics over WebSockets.

``server.py`` serves the page and its ``/config.json``; everything else happens in the browser.
"""

from edgepose.dashboard.server import DashboardServer, page_config, serve

__all__ = ["DashboardServer", "page_config", "serve"]
