"""Shared fixtures: both backends, the fake WeChat API, a WeChat simulator and a running app.

Every webhook test runs twice: on the embedded default (SQLite file, no Redis,
SQLite queue) and on the server stack (the machine's real PostgreSQL and
Redis). ``SISONG_TEST_BACKENDS=embedded`` narrows that for a quick run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from storage import surveys
from storage.models import Base
from tests.support.fake_wechat_api import FakeWeChatAPI

TOKEN = "sisongtesttoken"
APPID = "wxtestappid"
SECRET = "test-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

PG_URL = os.environ.get("SISONG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SISONG_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# pytest-xdist runs the suite in several processes (`-n 2` in pyproject.toml): each worker gets its own
# PostgreSQL database (test_gw0, test_gw1, …, created when missing) and its own Redis database, so they never
# empty each other's tables. Set in the environment too, for modules and subprocesses that read it there.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# Once per process: a test module importing ``tests.conftest`` loads this file a second time (pytest loaded it
# as ``conftest``), and the suffix must not be applied to the already suffixed URLs (test_gw0_gw0).
if WORKER and os.environ.get("SISONG_TEST_WORKER_URLS") != WORKER:
    _index = int(WORKER.lstrip("gw") or 0)
    PG_URL = f"{PG_URL}_{WORKER}"
    _redis_base, _redis_db = REDIS_URL.rsplit("/", 1)
    REDIS_URL = f"{_redis_base}/{max(0, int(_redis_db) - _index)}"
    os.environ["SISONG_TEST_POSTGRES_URL"], os.environ["SISONG_TEST_REDIS_URL"] = PG_URL, REDIS_URL
    os.environ["SISONG_TEST_WORKER_URLS"] = WORKER


def _ensure_worker_database() -> None:
    if not WORKER:
        return
    import psycopg

    base, name = PG_URL.rsplit("/", 1)
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        pass  # no server: the server backend's tests fail or skip as they would without xdist


_ensure_worker_database()
BACKENDS = [b.strip() for b in os.environ.get("SISONG_TEST_BACKENDS", "embedded,server").split(",") if b.strip()]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or SISONG_* variable leaks into a test."""
    for key in list(os.environ):
        if key.startswith("SISONG_") and not key.startswith("SISONG_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    surveys.forget_open_cache()  # "is a campaign open" is remembered per process for 2 s


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Argon2 with its smallest cost: tests check who may log in, not how slow guessing is.

    The production parameters (~0.15 s a hash here) made the console tests spend most of
    their setup hashing; the hashes stay argon2id, and verify reads the cost from each hash.
    """
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    import storage.accounts as accounts

    saved = accounts._hasher, accounts._DUMMY_HASH
    accounts._hasher = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    accounts._DUMMY_HASH = accounts._hasher.hash("sisong-no-such-user")
    yield
    accounts._hasher, accounts._DUMMY_HASH = saved


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as api:
        yield api


@pytest.fixture
def api(fake_api: FakeWeChatAPI) -> FakeWeChatAPI:
    fake_api.reset()
    fake_api.invalidate_tokens()
    return fake_api


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_sqlite_template: Path | None = None


def sqlite_template() -> Path:
    """An embedded database migrated once per test run (by the real migrations), copied for each test.

    Running the fourteen migrations costs about a second; every embedded test
    used to pay it for its fresh file. A copy of a migrated file is the same
    database, for a few milliseconds. Tests that exercise the migrations
    themselves make their own files.
    """
    global _sqlite_template
    if _sqlite_template is None:
        from storage.db import Database

        path = Path(tempfile.mkdtemp(prefix="sisong-test-template-")) / "template.db"
        db = Database(f"sqlite:///{path}")
        db.upgrade()
        db.dispose()
        conn = sqlite3.connect(path)  # fold the WAL into the file, so the file alone is the database
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        _sqlite_template = path
    return _sqlite_template


def _backend_settings(backend: str, tmp_path: Path) -> dict[str, Any]:
    if backend == "embedded":
        target = tmp_path / "sisong.db"
        if not target.exists():
            shutil.copyfile(sqlite_template(), target)
        return {"database_url": f"sqlite:///{target}", "redis_url": None}
    return {"database_url": PG_URL, "redis_url": REDIS_URL}


_schema_rebuilt = False


def reset_server_stores() -> None:
    """Empty tables and Redis; the first call of a run rebuilds the schema from the migrations.

    Rebuilding makes the run independent of whatever an earlier run (or another
    branch's migrations) left in the shared ``test`` database.
    """
    global _schema_rebuilt
    from storage.db import Database

    db = Database(PG_URL)
    if not _schema_rebuilt:
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        _schema_rebuilt = True
    db.upgrade()
    # The pioneer teams are seeded by a migration: they are structure, not test data. DELETE (children
    # first) and restarting the sequences, not TRUNCATE: for tables this small it is 10-20 ms instead of
    # 150-450 ms (TRUNCATE makes new files for 44 tables), and every server test pays it.
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "teams"]
    with db.engine.connect() as conn:
        sequences = [row[0] for row in conn.execute(text(
            "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'"))]
    raw = db.engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("".join(f"DELETE FROM {t};" for t in tables)
                        + "".join(f"ALTER SEQUENCE {s} RESTART;" for s in sequences))
        raw.commit()
    finally:
        raw.close()
    db.dispose()
    redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture
def make_settings(backend: str, tmp_path: Path, api: FakeWeChatAPI) -> Callable[..., Settings]:
    if backend == "server":
        reset_server_stores()

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "wechat_token": TOKEN,
            "wechat_appid": APPID,
            "wechat_secret": SECRET,
            "wechat_api_base": api.base_url,
            "wecom_robot_url": api.wecom_url,
            "queue_path": str(tmp_path / "queue.db"),
            "api_retry_wait": 0.01,
            "embedded_worker": "true",
            # Well under WeChat's 5 s, but with room for two test processes and their servers on two cores;
            # the tests of the hand-off itself pin 1.5 s (test_webhook_behaviour.py).
            "reply_deadline": 3.0,
            "db_timeout": 1.0,
            **_backend_settings(backend, tmp_path),
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as test_client:
        yield test_client


@pytest.fixture
def sim(settings: Settings) -> WeChatSimulator:
    mode = "safe" if settings.wechat_aes_key else "plain"
    return WeChatSimulator(TOKEN, APPID, settings.wechat_aes_key, mode=mode, openid="oTestUser0000000000000001")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate`` is truthy (queue consumers run in other threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session's browser tests (see tests/support/browser.py)."""
    from tests.support.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def live_url(services: Services) -> Iterator[str]:
    """The whole app (webhook, console, API) served by uvicorn on a loopback port."""
    from tests.support.browser import live_server

    with live_server(create_app(services)) as url:
        yield url
