"""The spool: messages the database could not take, kept on local disk until it can.

When the database is down or hung, the follower is told "系统繁忙" in time,
but their words must not be lost: the message (masked) is appended to a file
in ``SISONG_SPOOL_DIR`` and fsync'd. The sweeper replays spool files into the
inbox once the database answers (``storage.inbox.record_busy``, idempotent by
dedupe key) and queues the words for a cadre. Each process writes its own
file; a replayer takes a file by renaming it, so two replayers never read the
same one, and a file whose replay failed is put back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._name = f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"

    def append(self, record: dict[str, Any]) -> None:
        """Durably add one record (a line of JSON); raises OSError if the disk refuses."""
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / self._name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending(self) -> int:
        """Spool files waiting for replay (for /healthz)."""
        if not self.directory.is_dir():
            return 0
        return sum(1 for p in self.directory.iterdir() if p.name.endswith(SUFFIX))

    def replay(self, apply: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand every spooled record to ``apply`` (one call per file); returns records replayed.

        ``apply`` must be idempotent: a crash after it ran but before the file
        was removed replays the file again.
        """
        if not self.directory.is_dir():
            return 0
        done = 0
        for path in sorted(self.directory.iterdir()):
            if not path.name.endswith(SUFFIX):
                continue
            taken = path.with_name(f"{path.name}.replaying-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            with self._lock:  # our own writer must not append to a file being replayed
                try:
                    os.rename(path, taken)
                except FileNotFoundError:
                    continue  # another replayer took it
            records = []
            for number, line in enumerate(taken.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    log.error("spool %s line %d unreadable, skipped", path.name, number)
            try:
                apply(records)
            except Exception:
                os.rename(taken, path)  # try again at the next sweep
                raise
            taken.unlink()
            done += len(records)
        self._recover_orphans()
        return done

    def _recover_orphans(self) -> None:
        """A replayer killed mid-file left ``*.replaying-PID-*``: put it back if PID is gone."""
        for path in self.directory.iterdir():
            if ".replaying-" not in path.name:
                continue
            pid = path.name.rsplit(".replaying-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                original = path.with_name(path.name.split(".replaying-", 1)[0])
                try:
                    os.rename(path, original.with_name(f"recovered-{uuid.uuid4().hex[:6]}-{original.name}"))
                except FileNotFoundError:
                    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
