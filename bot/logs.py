"""Structured logging with personal data masked on the way out.

Everything a handler can write goes through ``storage.privacy.mask_text``: the
rendered message, every extra (strings, and numbers or containers that hold a
personal number), and the exception text and stack of ``log.exception`` - a
traceback repeats the household's words whenever an exception message quotes
them (``ValueError: invalid literal for int(): '138 1234 5678'``).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

from storage.privacy import mask_text

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_MASKED = "_sisong_masked"  # set on a record once masked, so formatters need not mask it again
_TRACEBACKS = logging.Formatter()


def _mask_value(value: Any) -> Any:
    """``value`` with personal numbers masked; unchanged (same object) when nothing was found."""
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask_value(v) for v in value]
    rendered = str(value)  # ints (a phone passed as a number) and any other object
    masked = mask_text(rendered)
    return value if masked == rendered else masked


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask a record in place: message, extras, exception text and stack (idempotent)."""
    if getattr(record, _MASKED, False):
        return record
    try:
        rendered = record.getMessage()
    except Exception:  # a bad format string must not lose the line
        rendered = str(record.msg)
    record.msg = mask_text(rendered)
    record.args = None
    for key, value in list(vars(record).items()):
        if key not in _RESERVED and not key.startswith("_"):
            setattr(record, key, _mask_value(value))
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text instead of formatting exc_info again, so the
        # masked text is what every handler after this one writes.
        record.exc_text = _TRACEBACKS.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_text(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)
    setattr(record, _MASKED, True)
    return record


class MaskingFilter(logging.Filter):
    """Masks the record before any formatter sees it, so no handler or formatter can leak it."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; masks the record itself too, in case it is used without the filter."""

    def format(self, record: logging.LogRecord) -> str:
        mask_record(record)
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info or record.exc_text:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class KeyValueFormatter(logging.Formatter):
    """``time level logger: message key=value …``; masks the record itself too, like JsonFormatter."""

    def format(self, record: logging.LogRecord) -> str:
        mask_record(record)
        base = super().format(record)
        extras = " ".join(
            f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")
        )
        return f"{base} {extras}" if extras else base


class RepeatFilter(logging.Filter):
    """Lets the first of a run of identical errors through, then one line per ``every`` seconds.

    Huey's consumer logs a full traceback for every failed read while Redis is
    down (about ten a second across its threads); the first says everything,
    the rest would bury the log. Only loggers under ``prefix`` are affected.
    """

    def __init__(self, prefix: str, every: float = 60.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.every = every
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefix):
            return True
        key = (record.name.split("-")[0], record.msg)  # Worker-1 and Worker-2 say the same thing
        now = time.monotonic()
        with self._lock:
            first, suppressed = self._seen.get(key, (0.0, 0))
            if now - first < self.every:
                self._seen[key] = (first, suppressed + 1)
                return False
            self._seen[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} (and {suppressed} more like it in the last {self.every:.0f} s)"
        return True


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter("huey."))
    handler.addFilter(MaskingFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_sisong", False):
            root.removeHandler(old)
    handler._sisong = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("jieba", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
