"""2.3.0's logging helpers, kept for code that calls them: ``setup_logging`` and ``get_logger``.

ModelForge itself never installs a handler: a library leaves that to the application (2.3.0 called
``setup_logging()`` when this module was imported, which printed every INFO line of ModelForge on stdout;
that is one of its listed defects). ``setup_logging`` does what 2.3.0's did when an application asks for it:
the ``modelforge`` logger at ``level``, with a stdout handler (and a file handler for ``filename``) and no
propagation to the root logger.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["get_logger", "setup_logging"]

DEFAULT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def setup_logging(
    level: str = "INFO", format_string: str | None = None, filename: str | None = None
) -> logging.Logger:
    """Send ModelForge's log lines at ``level`` and above to stdout (and ``filename``); the ``modelforge``
    logger, as configured, is returned. Calling it again replaces the handlers it added."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        from modelforge.exceptions import InvalidInputError

        raise InvalidInputError(
            f"Unknown logging level {level!r}",
            suggestion="Use DEBUG, INFO, WARNING, ERROR or CRITICAL",
            error_code="INVALID_LOG_LEVEL",
        )
    formatter = logging.Formatter(format_string or DEFAULT_FORMAT)
    logger = logging.getLogger("modelforge")
    logger.setLevel(numeric)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):
            handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if filename:
        handlers.append(logging.FileHandler(filename))
    for handler in handlers:
        handler.setLevel(numeric)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def get_logger(name: str) -> logging.Logger:
    """The logger ``modelforge.<name>``."""
    return logging.getLogger(f"modelforge.{name}")
