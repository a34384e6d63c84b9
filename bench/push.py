"""Pushing one job posting to 20,000 followers: time, sends/s, duplicates, losses (issue 9).

Sets up a database with ``--recipients`` bound followers (one household each,
in 100 villages), a posting and one push to the whole township, then runs the
sender as a real ``python bench/push.py --worker`` subprocess (``build_services``
and ``Pusher.drain``, as ``sisong worker`` would) against the fake WeChat API
(``tests.support.fake_wechat_api``, in its own process, HTTP/1.1 keep-alive,
``--latency`` seconds per send). The clock runs from the push (rows written)
until every row is settled.

With ``--kill`` the worker gets SIGKILL once ``--kill-at`` of the rows are sent,
and a new worker is started at once, as a supervisor would: it finds the dead
worker's claims and in-flight rows when their leases run out
(``SISONG_PUSH_LEASE``, and the sending lease from ``SISONG_API_TIMEOUT``).

Counted from the fake's side (what followers actually received; a template
repeated with the same ``client_msg_id`` within 10 minutes is one message, as
at WeChat): duplicates = followers who got more than one, losses = followers
who got none. From the database: rows per status (``unconfirmed`` ones are
also reported: their call went out or not, and nothing says which).

    python bench/push.py [--recipients 20000] [--latency 0.02] [--threads 32] [--kill]
                         [--embedded] [--channel template|custom]

PostgreSQL + Redis by default (``SISONG_BENCH_POSTGRES_URL``, default
postgresql://postgres@127.0.0.1:5432/sisong_bench, created if missing, its
schema dropped; ``SISONG_BENCH_REDIS_URL``, default redis://127.0.0.1:6379/11,
flushed); ``--embedded`` uses a SQLite file and no Redis. Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APPID, SECRET, TOKEN = "wxbenchappid", "bench-secret", "benchtoken"
TEMPLATE_ID = "TPL_bench_job_notice_000001"


def _serve_fake(latency: float, conn) -> None:  # type: ignore[no-untyped-def]
    from tests.support.fake_wechat_api import FakeWeChatAPI

    api = FakeWeChatAPI(appid=APPID, secret=SECRET, keep_alive=True, record_calls=False).start()
    for endpoint in ("message/template/send", "message/custom/send"):
        api.set_latency(endpoint, latency)
    conn.send(api.port)
    signal.sigwait({signal.SIGTERM}) if hasattr(signal, "sigwait") else time.sleep(10**9)


def _env(db_url: str, redis_url: str | None, port: int, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISONG_")}
    env.update({
        "SISONG_DATABASE_URL": db_url, "SISONG_REDIS_URL": redis_url or "",
        "SISONG_WECHAT_APPID": APPID, "SISONG_WECHAT_SECRET": SECRET, "SISONG_WECHAT_TOKEN": TOKEN,
        "SISONG_WECHAT_API_BASE": f"http://127.0.0.1:{port}/cgi-bin/", "SISONG_WECHAT_TEMPLATE_JOB": TEMPLATE_ID,
        "SISONG_PUSH_RATE": "5000/second", "SISONG_PUSH_THREADS": str(threads), "SISONG_PUSH_LEASE": "3",
        "SISONG_API_TIMEOUT": "1", "SISONG_API_RETRY_WAIT": "0.01", "SISONG_EMBEDDED_WORKER": "false",
        "SISONG_LOG_LEVEL": "WARNING", "SISONG_WECOM_ROBOT_URL": f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key=x",
        "PYTHONPATH": str(ROOT),
    })
    return env


def _setup(db_url: str, redis_url: str | None, recipients: int, custom: bool) -> None:
    from sqlalchemy import text

    from storage.db import Database
    from storage.models.followers import Follower
    from storage.models.org import Hamlet, Household, HouseholdBinding, Township, Village

    db = Database(db_url)
    if not db.is_sqlite:
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    db.upgrade()
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    now = datetime.now(timezone.utc)
    last = now - timedelta(hours=1) if custom else None
    with db.session() as session:
        township = Township(name="本镇")
        session.add(township)
        session.flush()
        villages = [Village(township_id=township.id, name=f"村{i:03d}") for i in range(100)]
        session.add_all(villages)
        session.flush()
        hamlets = [Hamlet(village_id=v.id, name="一组") for v in villages]
        session.add_all(hamlets)
        session.flush()
        households = [{"township_id": township.id, "number": f"H{i:06d}", "head_name": f"户主{i}",
                       "village_id": villages[i % 100].id, "hamlet_id": hamlets[i % 100].id, "labourers": 1,
                       "lifted": False, "monitored": False, "created_at": now, "updated_at": now}
                      for i in range(recipients)]
        session.execute(Household.__table__.insert(), households)
        ids = [hid for hid, in session.execute(text("SELECT id FROM households ORDER BY id"))]
        session.execute(HouseholdBinding.__table__.insert(), [
            {"household_id": hid, "openid": f"oBench{i:022d}", "via": "code", "bound_at": now, "tagged": True}
            for i, hid in enumerate(ids)])
        session.execute(Follower.__table__.insert(), [
            {"openid": f"oBench{i:022d}", "subscribed": True, "first_seen": now, "last_seen": now,
             "last_interaction": last} for i in range(recipients)])
    db.dispose()


def _push(env: dict[str, str]) -> tuple[int, int, float]:
    """Add the posting and push it to --all in this process (as `sisong jobs push --detach` would)."""
    os.environ.update(env)
    from bot.config import load_settings
    from bot.jobs import start_push
    from bot.services import build_services
    from storage.households import ensure_township
    from storage.jobs import JobInput, add_posting
    from storage.pushes import Targets

    services = build_services(load_settings(), migrate=False)
    with services.db.session() as session:
        township = ensure_township(session, "本镇")
        job = add_posting(session, township.id, JobInput("电子厂普工", "县工业园电子厂", "县城工业园", "4500元/月", 50,
                                                         "王经理 13800001111", "18-50岁")).id
    started = time.monotonic()
    _, created = start_push(services, job, Targets(everyone=True))
    written = time.monotonic() - started
    services.close()
    return created.push.id, created.recipients, written


def _counts(db_url: str, push_id: int) -> dict[str, int]:
    from sqlalchemy import text

    from storage.db import Database

    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            return dict(conn.execute(text("SELECT status, count(*) FROM push_deliveries WHERE push_id = :p "
                                          "GROUP BY status"), {"p": push_id}).all())
    finally:
        db.dispose()


def _worker(push_id: int) -> None:
    from bot.config import load_settings
    from bot.services import build_services

    services = build_services(load_settings(), migrate=False)
    started = time.monotonic()
    handled = services.pusher.drain(wait_for={push_id})
    print(json.dumps({"handled": handled, "sent": services.pusher.sent, "seconds": time.monotonic() - started,
                      "cpu_s": time.process_time()}), flush=True)
    services.close()


def _start_worker(env: dict[str, str], push_id: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--worker", "--push-id", str(push_id)], env=env,
                            stdout=subprocess.PIPE, text=True)


def run(args: argparse.Namespace) -> dict[str, object]:
    if args.embedded:
        folder = tempfile.mkdtemp(prefix="sisong-bench-push-")
        db_url, redis_url = f"sqlite:///{folder}/bench.db", None
    else:
        db_url = os.environ.get("SISONG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/sisong_bench")
        redis_url = os.environ.get("SISONG_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
        _ensure_database(db_url)
    parent, child = multiprocessing.Pipe()
    fake = multiprocessing.Process(target=_serve_fake, args=(args.latency, child), daemon=True)
    fake.start()
    port = parent.recv()
    try:
        _setup(db_url, redis_url, args.recipients, args.channel == "custom")
        env = _env(db_url, redis_url, port, args.threads)
        push_id, recipients, written = _push(env)
        started = time.monotonic()
        workers = [_start_worker(env, push_id) for _ in range(args.workers)]
        killed_at = None
        while True:
            counts = _counts(db_url, push_id)
            waiting = sum(counts.get(s, 0) for s in ("pending", "claimed", "sending"))
            if args.kill and killed_at is None and recipients - waiting >= recipients * args.kill_at:
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait()
                killed_at = time.monotonic() - started
                workers[0] = _start_worker(env, push_id)  # the supervisor restarts it
            if not waiting:
                break
            if all(w.poll() is not None for w in workers) and waiting:
                workers = [_start_worker(env, push_id) for _ in range(args.workers)]
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        worker_cpu = 0.0
        for w in workers:
            out, _ = w.communicate(timeout=60)
            for line in (out or "").splitlines():
                if line.startswith("{"):
                    worker_cpu += json.loads(line).get("cpu_s", 0.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__fake__/deliveries", timeout=10) as answer:
            delivered = json.loads(answer.read())
        fake_cpu = _cpu_seconds(fake.pid)
    finally:
        fake.terminate()
    got = [delivered.get(f"oBench{i:022d}", 0) for i in range(args.recipients)]
    return {
        "backend": "SQLite" if args.embedded else "PostgreSQL + Redis", "recipients": recipients,
        "channel": args.channel, "latency_ms": args.latency * 1000, "threads": args.threads,
        "workers": args.workers, "rows_written_s": round(written, 2), "seconds": round(elapsed, 2),
        "sends_per_s": round(sum(1 for g in got if g) / elapsed, 1), "duplicates": sum(1 for g in got if g > 1),
        "losses": sum(1 for g in got if g == 0), "killed_at_s": round(killed_at, 2) if killed_at else None,
        "rows": counts, "worker_cpu_s": round(worker_cpu, 1), "fake_wechat_cpu_s": round(fake_cpu, 1),
        "load_average": os.getloadavg()[0],
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _ensure_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    from storage.db import normalize_url

    base, name = normalize_url(url).rsplit("/", 1)
    engine = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per send at the fake WeChat API")
    parser.add_argument("--threads", type=int, default=32, help="SISONG_PUSH_THREADS of each worker")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the first worker once, mid-way")
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of rows settled when killed")
    parser.add_argument("--embedded", action="store_true", help="SQLite, no Redis")
    parser.add_argument("--channel", choices=("template", "custom"), default="template",
                        help="followers outside the 48-hour window (template) or inside it (custom)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--push-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.push_id)
        return
    result = run(args)
    print(f"# {platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
