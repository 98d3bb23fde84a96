"""One place that keeps secrets out of what edgepose prints: every URL, log line, error and ``config show``.

``mask`` replaces the password of each ``scheme://user:password@host`` URL in a text with ``***``, and the value
of ``token=`` / ``password=`` query parameters too. Logs get it through ``MaskingFormatter``; messages built by
the library call it directly, so a camera URL with credentials never reaches a terminal, the journal or MQTT.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@\"'<>]*:)[^\s/@\"'<>]*@", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"([?&;](?:token|password|passwd|pwd|secret)=)[^\s&;#\"'<>]+", re.IGNORECASE)


def mask(text: str) -> str:
    """``text`` with URL passwords and secret query parameters replaced by ``***``."""
    return _QUERY_SECRET.sub(rf"\g<1>{MASK}", _URL_PASSWORD.sub(rf"\g<1>{MASK}@", str(text)))


class MaskingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments and traceback alike) has its secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def install_log_masking() -> None:
    """Mask secrets in everything the root logger's handlers write (call after ``logging.basicConfig``)."""
    for handler in logging.getLogger().handlers:
        fmt = handler.formatter
        handler.setFormatter(MaskingFormatter(fmt._fmt if fmt else None, fmt.datefmt if fmt else None))
