"""structlog set-up: JSON lines (console on a terminal), service name, and no PHI, ever."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

# Keys that may carry PHI. Dropped wherever they appear in a log event, however deep.
PHI_KEYS = frozenset({"mrn", "birth_year", "birth_date", "name", "referral_source"})


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if k not in PHI_KEYS}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def drop_phi(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor that removes PHI keys, so PHI cannot reach a log by accident."""
    for key in list(event_dict):
        if key in PHI_KEYS:
            del event_dict[key]
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _Stderr:
    """Whatever sys.stderr is when a line is written (test runners and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR: Any = _Stderr()


def configure_logging(service: str, fmt: Literal["json", "console"], level: str = "info") -> None:
    """Configure structlog and route the standard library's loggers through it."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_phi,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.WriteLoggerFactory(file=_STDERR),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(_STDERR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # a library's logged exception keeps its traceback
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # aiokafka logs every refused connection while a broker restarts; keep warnings and up.
    for noisy in ("aiokafka", "kafka", "pymongo", "uvicorn.access", "faststream"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)


def get_logger(name: str | None = None) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name)
