"""Lines in the host log, tagged with the app name and the request id.

One call is one log record: the host escapes embedded newlines. The host's
log filter decides which levels are written.
"""

from wit_world.imports.log import Level
from wit_world.imports.log import log as _log

__all__ = ["Level", "debug", "error", "info", "trace", "warn", "warning", "write"]


def write(level: Level, message: str) -> None:
    """Writes `message` to the host log at `level`."""
    _log(level, message)


def trace(message: str) -> None:
    """Writes `message` at level `trace`."""
    _log(Level.TRACE, message)


def debug(message: str) -> None:
    """Writes `message` at level `debug`."""
    _log(Level.DEBUG, message)


def info(message: str) -> None:
    """Writes `message` at level `info`."""
    _log(Level.INFO, message)


def warn(message: str) -> None:
    """Writes `message` at level `warn`."""
    _log(Level.WARN, message)


# The spelling of Python's `logging` module.
warning = warn


def error(message: str) -> None:
    """Writes `message` at level `error`."""
    _log(Level.ERROR, message)
