"""User-facing errors.

Library code raises ``EdgeposeError`` for things a user can fix (a missing file, a refused broker, a bad model);
the CLI prints its message as one line and exits non-zero, with a traceback only under ``--debug``.
The message says what is wrong and what to do.
"""


class EdgeposeError(Exception):
    """A problem the user can fix; str(err) is the one line shown to them."""


class SourceError(EdgeposeError):
    """A capture source cannot be opened or read."""


class ModelError(EdgeposeError):
    """A model file is missing, corrupt or of an unknown kind."""


class BrokerError(EdgeposeError):
    """The MQTT broker cannot be reached or refused the connection."""
