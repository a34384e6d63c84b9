"""Load and faults: what households see when Redis or PostgreSQL hangs, a web worker dies, or
WeChat redelivers while Redis refuses (issue 6).

The unit tests prove each mechanism once; this runs them under load, against
real processes, and counts what a household would have seen. For each
scenario it starts ``sisong serve --workers N`` and ``sisong worker`` on the
machine's PostgreSQL and Redis, each reached through a
``tests.support.fault_proxy.FaultProxy``, with the fake WeChat API
(``tests.support.fake_wechat_api``) receiving the customer-service messages.
A load generator in this process plays WeChat: ``--rate`` messages a second,
each from its own follower, each POST given 5 s, up to 3 attempts on a
timeout or connection error, the same signed request (URL and XML) every
time, as WeChat resends. Mid-load the fault is switched on for
``--fault-seconds``:

* ``redis-hang``  Redis stops answering (connections stay open).
* ``db-hang``     PostgreSQL stops answering; "系统繁忙" in time is expected, the
                  message kept as a ``busy`` row.
* ``worker-kill`` one web worker gets SIGKILL; PostgreSQL answers slowly from 1 s
                  before to 1 s after (``--kill-delay`` per chunk), so answers are in
                  flight (``--fault-seconds`` does not apply).
* ``redis-refused-redelivery``  Redis refuses connections, and every MsgId is
                  delivered 2-3 times at once. Here the web tier is N single-worker
                  ``sisong serve`` processes on their own ports, so the copies of a
                  MsgId provably reach different workers.

Afterwards (waiting up to ``--settle`` seconds for the sweeper and the queue)
every message is classified: answered in time (a passive reply with content),
busy in time (a passive "系统繁忙"), answered late (a customer-service message
reached that follower), busy late ("系统繁忙" as a customer-service message),
lost (none of these). From ``message_log``: handler runs per MsgId
(``attempts``), rows per dedupe key, and messages with no row at all
("not kept"). Duplicates are followers who got an answer twice (passive +
customer-service, or two customer-service messages).

Exits 1 if any message was lost or not kept, so it can serve as a check.
Server logs are kept (their directory is printed). Any SISONG_* variable in
the environment is passed to the servers (e.g. SISONG_CLAIM_LEASE=2).

    python bench/faults.py [--scenario db-hang ...] [--seconds 20] [--fault-seconds 10] [--rate 50]
                           [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import ConfigError, load_settings  # noqa: E402
from bot.pipeline import BUSY_TEXT, ERROR_TEXT  # noqa: E402
from bot.simulator import WeChatSimulator  # noqa: E402
from storage.db import Database, normalize_url  # noqa: E402
from storage.models import Base  # noqa: E402
from tests.support.fake_wechat_api import FakeWeChatAPI  # noqa: E402
from tests.support.fault_proxy import FaultProxy  # noqa: E402

TOKEN = "benchfaulttoken"
APPID = "wxbenchfaults"
SECRET = "bench-faults-secret"
SCENARIOS = ("redis-hang", "db-hang", "worker-kill", "redis-refused-redelivery")
WECHAT_TIMEOUT = 5.0  # WeChat waits 5 s for a reply ...
WECHAT_ATTEMPTS = 3  # ... and tries three times in all
CONTENT = "帮助"
console = Console(width=None if sys.stdout.isatty() else 200)


# -- the system under test ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_port(url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default


def prepare_database(url: str) -> None:
    """Create the database if needed and rebuild its schema from the migrations (a fresh run)."""
    url = normalize_url(url)
    name = urlsplit(url).path.lstrip("/")
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("select 1 from pg_database where datname = :n"), {"n": name}).first():
            conn.execute(text(f'create database "{name}"'))
    admin.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    database = Database(url)
    database.upgrade()
    database.dispose()


def empty_stores(db_url: str, redis_url: str) -> None:
    """Between scenarios: every table emptied, our Redis database flushed (only that one)."""
    engine = create_engine(normalize_url(db_url))
    tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    redis.Redis.from_url(redis_url).flushdb()


class Stack:
    """``sisong serve`` (one process with N workers, or N single-worker processes) + ``sisong worker``."""

    def __init__(self, name: str, workers: int, separate: bool, env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.workers = workers
        self.separate = separate
        self.env = env
        self.logdir = logdir
        self.ports = [free_port() for _ in range(workers if separate else 1)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def _spawn(self, label: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.logdir / f"{self.name}-{label}.log"
        self.logs.append(log_path)
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env={**self.env, **extra},
                                    cwd=self.logdir, stdout=log_file, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        if self.separate:
            for n, port in enumerate(self.ports):
                self._spawn(f"serve{n}", ["serve"], {"SISONG_PORT": str(port), "SISONG_WORKERS": "1"})
        else:
            self._spawn("serve", ["serve"], {"SISONG_PORT": str(self.ports[0]), "SISONG_WORKERS": str(self.workers)})
        self._spawn("worker", ["worker"], {})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise SystemExit(f"{self.name}: a server process exited ({proc.returncode}); see {self.logdir}")
            started = sum(p.read_text(errors="replace").count("Application startup complete")
                          for p in self.logs if "-serve" in p.name)
            if started >= self.workers and all(_answers(self.url(n)) for n in range(len(self.ports))):
                return
            time.sleep(0.3)
        raise SystemExit(f"{self.name}: the service did not start within 90 s; see {self.logdir}")

    def url(self, n: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[n % len(self.ports)]}/wechat"

    def web_workers(self) -> list[int]:
        """uvicorn's worker processes under the (single) serve process."""
        out = subprocess.run(["pgrep", "-P", str(self.procs[0].pid)], capture_output=True, text=True).stdout.split()
        pids = []
        for pid in out:
            try:
                if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="ignore"):
                    pids.append(int(pid))
            except OSError:
                pass
        return pids

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _answers(url: str) -> bool:
    sim = WeChatSimulator(TOKEN, APPID, openid="oBenchFaultsProbe0000000001")
    try:
        with httpx.Client(timeout=5) as http:
            return bool(sim.post(http, sim.text(CONTENT), path=url).text)
    except httpx.HTTPError:
        return False


# -- WeChat ------------------------------------------------------------------------------


@dataclass
class Message:
    n: int
    msg_id: int
    openid: str
    xml: str
    copies: int
    sent_at: float = 0.0  # seconds into the load
    passive: list[tuple[str, float]] = field(default_factory=list)  # (content, seconds) of each passive reply
    tries: list[str] = field(default_factory=list)  # what each attempt got

    @property
    def key(self) -> str:
        return f"m:{self.msg_id}"


async def deliver(client: httpx.AsyncClient, sim: WeChatSimulator, msg: Message, urls: list[str]) -> None:
    """WeChat's delivery of one message: each copy gets 5 s per attempt, 3 attempts, the same signed request."""

    signed = sim.sign(msg.xml)  # once: WeChat resends under the same URL with the same body

    async def chain(copy: int) -> None:
        url = urls[(msg.n + copy) % len(urls)]
        for _ in range(WECHAT_ATTEMPTS):
            started = time.monotonic()
            try:
                response = await asyncio.wait_for(
                    client.post(url, params=signed.params, content=signed.body,
                                headers={"Content-Type": "text/xml"}),
                    WECHAT_TIMEOUT,
                )
            except (TimeoutError, httpx.TimeoutException):
                msg.tries.append("timeout")
                continue
            except httpx.TransportError:
                msg.tries.append("connection error")
                await asyncio.sleep(0.5)
                continue
            if response.status_code != 200:
                msg.tries.append(f"http {response.status_code}")
                await asyncio.sleep(0.5)
                continue
            try:
                reply = sim.decode(response.status_code, response.content, signed)
            except ValueError:
                msg.tries.append("bad reply")
                return
            if reply.text:
                msg.tries.append("reply")
                msg.passive.append((reply.text, time.monotonic() - started))
            else:
                msg.tries.append("success")
            return

    await asyncio.gather(*(chain(copy) for copy in range(msg.copies)))


@dataclass
class Scenario:
    name: str
    fault: str
    separate: bool = False
    copies: tuple[int, ...] = (1,)


def scenario_of(name: str, args: argparse.Namespace) -> Scenario:
    s = args.fault_seconds
    return {
        "redis-hang": Scenario(name, f"Redis hangs {s:g} s"),
        "db-hang": Scenario(name, f"PostgreSQL hangs {s:g} s"),
        "worker-kill": Scenario(name, f"SIGKILL 1 of {args.workers} web workers, "
                                      f"DB +{args.kill_delay:g} s/chunk for 2 s"),
        "redis-refused-redelivery": Scenario(name, f"Redis refused {s:g} s, 2-3 copies/MsgId",
                                             separate=True, copies=(2, 3)),
    }[name]


async def run_load(scenario: Scenario, stack: Stack, msgs: list[Message], args: argparse.Namespace,
                   pg: FaultProxy, rds: FaultProxy, events: list[str]) -> float:
    sim = WeChatSimulator(TOKEN, APPID)
    urls = [stack.url(n) for n in range(len(stack.ports))]
    limits = httpx.Limits(max_connections=4000, max_keepalive_connections=400)

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - start:5.1f}s {what}")

    async def fault() -> None:
        await asyncio.sleep(args.fault_at)
        if scenario.name == "redis-hang":
            await asyncio.to_thread(rds.hang)
            note("redis hang")
        elif scenario.name == "db-hang":
            await asyncio.to_thread(pg.hang)
            note("postgres hang")
        elif scenario.name == "redis-refused-redelivery":
            await asyncio.to_thread(rds.refuse)
            note("redis refused")
        elif scenario.name == "worker-kill":
            await asyncio.to_thread(pg.delay, args.kill_delay)
            note(f"postgres delay {args.kill_delay:g} s per chunk")
            await asyncio.sleep(1.0)
            victims = stack.web_workers()
            if victims:
                os.kill(victims[0], signal.SIGKILL)
                note(f"SIGKILL web worker {victims[0]} (of {len(victims)})")
            else:
                note("no web worker found to kill")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(pg.pass_)
            note("postgres normal")
            return
        await asyncio.sleep(args.fault_seconds)
        await asyncio.to_thread(pg.pass_)
        await asyncio.to_thread(rds.pass_)
        note("fault over")

    async with httpx.AsyncClient(limits=limits, timeout=None) as client:
        start = time.monotonic()
        fault_task = asyncio.create_task(fault())
        tasks = []
        for i, msg in enumerate(msgs):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            msg.sent_at = time.monotonic() - start
            tasks.append(asyncio.create_task(deliver(client, sim, msg, urls)))
        offered = len(msgs) / max(time.monotonic() - start, 1e-9)
        note(f"last message sent ({offered:.1f} msg/s offered)")
        await asyncio.gather(*tasks)
        note("WeChat done (every attempt answered or given up)")
        await fault_task
    return offered


# -- what the households saw ------------------------------------------------------------------


@dataclass
class Outcome:
    counts: collections.Counter[str]
    runs_max: int
    runs_mean: float
    duplicates: int
    rows_per_key_max: int
    not_kept: int
    statuses: collections.Counter[str]
    tries: collections.Counter[str]
    passive_p50: float | None
    passive_p99: float | None
    errors_replied: int
    examples: dict[str, list[str]]
    spans: dict[str, tuple[float, float]]  # first and last send time (s into the load) of each kind
    for_cadre: int  # kb_unanswered rows: words queued for a person (busy messages among them)


def customs_by_follower(api: FakeWeChatAPI) -> dict[str, list[str]]:
    sent: dict[str, list[str]] = collections.defaultdict(list)
    for call in api.calls_to("message/custom/send"):
        body = call.json if isinstance(call.json, dict) else {}
        sent[str(body.get("touser"))].append(str((body.get("text") or {}).get("content", "")))
    return sent


def classify(msg: Message, customs: list[str]) -> str:
    contents = [c for c, _ in msg.passive]
    if any(c != BUSY_TEXT for c in contents):
        return "in time"
    if contents:
        return "busy in time"
    if any(c != BUSY_TEXT for c in customs):
        return "late"
    if customs:
        return "busy late"
    return "lost"


def count_for_cadre(db_url: str) -> int:
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        count = int(conn.execute(text("select count(*) from kb_unanswered")).scalar_one())
    engine.dispose()
    return count


def inbox_rows(db_url: str, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        result = conn.execute(
            text("select dedupe_key, status, attempts, owner, handler, errcode, channel from message_log "
                 "where direction = 'in' and dedupe_key = any(:keys)"),
            {"keys": keys},
        ).mappings().all()
    engine.dispose()
    rows: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in result:
        rows[row["dedupe_key"]].append(dict(row))
    return rows


def settle(db_url: str, api: FakeWeChatAPI, msgs: list[Message], spool: Path, timeout: float) -> float:
    """Wait for the sweeper and the queue: every message classified, no open claim, spool empty."""
    started = time.monotonic()
    keys = [m.key for m in msgs]
    while time.monotonic() - started < timeout:
        customs = customs_by_follower(api)
        unsettled = sum(classify(m, customs.get(m.openid, [])) == "lost" for m in msgs)
        rows = inbox_rows(db_url, keys)
        open_rows = sum(r["status"] in ("received", "owed", "sending") for rs in rows.values() for r in rs)
        spooled = sum(1 for p in spool.iterdir()) if spool.is_dir() else 0
        if not unsettled and not open_rows and not spooled:
            time.sleep(1.5)  # a duplicate send in flight would land now
            break
        time.sleep(0.5)
    return time.monotonic() - started


def measure(db_url: str, api: FakeWeChatAPI, msgs: list[Message]) -> Outcome:
    customs = customs_by_follower(api)
    rows = inbox_rows(db_url, [m.key for m in msgs])
    counts: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[str] = collections.Counter()
    tries: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    runs: list[int] = []
    spans: dict[str, tuple[float, float]] = {}
    duplicates = not_kept = errors_replied = 0
    latencies: list[float] = []
    for msg in msgs:
        mine = customs.get(msg.openid, [])
        kind = classify(msg, mine)
        counts[kind] += 1
        first, last = spans.get(kind, (msg.sent_at, msg.sent_at))
        spans[kind] = (min(first, msg.sent_at), max(last, msg.sent_at))
        tries.update(msg.tries)
        latencies += [seconds for _, seconds in msg.passive]
        received = (1 if msg.passive else 0) + len(mine)  # WeChat shows one passive reply at most
        if received >= 2:
            duplicates += 1
            examples["duplicate"].append(f"MsgId {msg.msg_id}: passive {len(msg.passive)}, custom {len(mine)}")
        if ERROR_TEXT in [c for c, _ in msg.passive] + mine:
            errors_replied += 1
        mine_rows = rows.get(msg.key, [])
        if not mine_rows:
            not_kept += 1
            examples["not kept"].append(f"MsgId {msg.msg_id} ({kind}, tries {','.join(msg.tries)})")
        for row in mine_rows:
            statuses[row["status"]] += 1
            runs.append(int(row["attempts"] or 0))
        if "timeout" in msg.tries:
            examples["an attempt timed out"].append(
                f"MsgId {msg.msg_id} sent at {msg.sent_at:.1f}s ({kind}), tries {','.join(msg.tries)}")
        if kind == "lost":
            state = "; ".join(f"{r['status']} attempts={r['attempts']} handler={r['handler']}" for r in mine_rows)
            examples["lost"].append(f"MsgId {msg.msg_id} sent at {msg.sent_at:.1f}s, tries "
                                    f"{','.join(msg.tries)}; message_log: {state or 'no row'}")
    latencies.sort()
    return Outcome(
        counts=counts, runs_max=max(runs, default=0), runs_mean=statistics.fmean(runs) if runs else 0.0,
        duplicates=duplicates, rows_per_key_max=max((len(r) for r in rows.values()), default=0),
        not_kept=not_kept, statuses=statuses, tries=tries,
        passive_p50=latencies[len(latencies) // 2] if latencies else None,
        passive_p99=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
        errors_replied=errors_replied, examples=examples, spans=spans, for_cadre=count_for_cadre(db_url),
    )


_NOISE = re.compile(r"\b\d+(\.\d+)?\b|o\w{2,4}…\w{4}|[0-9a-f]{12}")


def log_summary(paths: list[Path], top: int = 8) -> list[str]:
    """WARNING/ERROR lines of the server logs, grouped with numbers and ids blanked."""
    seen: collections.Counter[str] = collections.Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if " WARNING " in line or " ERROR " in line or line.startswith(("WARNING", "ERROR")):
                line = re.sub(r"^\d{4}-\d\d-\d\d \S+ ", "", line)
                seen[f"{path.name.split('-')[-1].removesuffix('.log')}: " + _NOISE.sub("#", line)[:150]] += 1
    return [f"{n:5d}× {line}" for line, n in seen.most_common(top)]


# -- one scenario, and the run ------------------------------------------------------------------


def run_scenario(index: int, scenario: Scenario, args: argparse.Namespace, base_env: dict[str, str],
                 api: FakeWeChatAPI, pg: FaultProxy, rds: FaultProxy, workdir: Path,
                 msg_base: int, run_tag: int) -> tuple[Outcome, float, list[str], list[str], Stack]:
    empty_stores(args.database_url, args.redis_url)
    spool = workdir / f"spool-{scenario.name}"
    env = {**base_env, "SISONG_SPOOL_DIR": str(spool)}
    stack = Stack(scenario.name, args.workers, scenario.separate, env, workdir)
    console.print(f"[bold]{scenario.name}[/bold]: starting {args.workers} web worker(s) + sisong worker…")
    stack.start()
    api.reset()
    sim = WeChatSimulator(TOKEN, APPID)
    count = int(args.rate * args.seconds)
    msgs = []
    for n in range(count):
        openid = f"oBF{run_tag:07d}{index}{n:06d}"
        msg_id = msg_base + index * 10**6 + n
        msgs.append(Message(n, msg_id, openid, sim.text(CONTENT, msg_id=msg_id, openid=openid),
                            copies=scenario.copies[n % len(scenario.copies)]))
    events: list[str] = []
    try:
        offered = asyncio.run(run_load(scenario, stack, msgs, args, pg, rds, events))
        waited = settle(args.database_url, api, msgs, spool, args.settle)
        events.append(f"settled after {waited:.1f} s more")
        outcome = measure(args.database_url, api, msgs)
    finally:
        pg.pass_()
        rds.pass_()
        stack.stop()
    return outcome, offered, events, log_summary(stack.logs), stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="run this scenario (repeatable; default: all)")
    parser.add_argument("--seconds", type=float, default=20, help="load duration per scenario (default 20)")
    parser.add_argument("--fault-seconds", type=float, default=10, help="how long the fault lasts (default 10)")
    parser.add_argument("--fault-at", type=float, default=4, help="seconds into the load the fault starts (default 4)")
    parser.add_argument("--rate", type=float, default=50, help="messages (MsgIds) per second offered (default 50)")
    parser.add_argument("--workers", type=int, default=2, help="web workers (default 2)")
    parser.add_argument("--kill-delay", type=float, default=0.05,
                        help="worker-kill: PostgreSQL latency per chunk while the worker dies (default 0.05)")
    parser.add_argument("--settle", type=float, default=30, help="seconds to wait for late answers (default 30)")
    parser.add_argument("--database-url", default=os.environ.get(
        "SISONG_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_faults"),
        help="PostgreSQL database the bench owns (dropped and rebuilt; default bench_faults)")
    parser.add_argument("--redis-url", default=os.environ.get("SISONG_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
                        help="Redis database the bench owns (flushed; default db 9)")
    parser.add_argument("--log-level", default="INFO", help="SISONG_LOG_LEVEL of the servers (default INFO)")
    args = parser.parse_args()
    names = args.scenario or list(SCENARIOS)
    # MsgIds: microseconds since the epoch x 1000 (no earlier run reaches them), + scenario x 10^6 + n.
    msg_base = (time.time_ns() // 1000) * 1000
    run_tag = int(time.time()) % 10**7

    workdir = Path(tempfile.mkdtemp(prefix="sisong-bench-faults-"))
    console.print(f"fresh schema in {args.database_url}; logs in {workdir}")
    prepare_database(args.database_url)
    pg_host, pg_port = host_port(normalize_url(args.database_url), 5432)
    redis_host, redis_port = host_port(args.redis_url, 6379)
    dbname = urlsplit(normalize_url(args.database_url)).path.lstrip("/")
    redis_db = int(urlsplit(args.redis_url).path.lstrip("/") or 0)

    rows: list[tuple[Scenario, Outcome, float]] = []
    details: list[tuple[str, list[str], list[str], Outcome]] = []
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as api, FaultProxy(pg_host, pg_port) as pg, \
            FaultProxy(redis_host, redis_port) as rds:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("SISONG_BENCH_")}
        base_env.update(
            SISONG_WECHAT_TOKEN=TOKEN, SISONG_WECHAT_APPID=APPID, SISONG_WECHAT_SECRET=SECRET,
            SISONG_WECHAT_API_BASE=api.base_url, SISONG_DATABASE_URL=pg.postgres_url(dbname),
            SISONG_REDIS_URL=rds.redis_url(redis_db), SISONG_EMBEDDED_WORKER="false",
            SISONG_LOG_LEVEL=args.log_level, PYTHONPATH=str(ROOT),
        )
        try:
            effective = load_settings(**{k.removeprefix("SISONG_").lower(): v for k, v in base_env.items()
                                         if k.startswith("SISONG_") and k != "SISONG_WORKERS"})
        except ConfigError as exc:
            raise SystemExit(str(exc)) from None
        started = time.monotonic()
        for index, name in enumerate(names):
            scenario = scenario_of(name, args)
            outcome, offered, events, logs, _ = run_scenario(index, scenario, args, base_env, api, pg, rds,
                                                             workdir, msg_base, run_tag)
            rows.append((scenario, outcome, offered))
            details.append((name, events, logs, outcome))
        total = time.monotonic() - started

    table = Table(title=f"faults under load: {args.rate:g} msg/s for {args.seconds:g} s, fault at "
                        f"{args.fault_at:g} s for {args.fault_seconds:g} s, {args.workers} web workers + sisong worker")
    columns = ("scenario", "fault", "MsgIds", "in time", "busy in time", "late", "busy late", "lost",
               "runs/MsgId max", "runs mean", "dup", "rows/key max", "not kept")
    for column in columns:
        table.add_column(column, justify="left" if column in ("scenario", "fault") else "right",
                         no_wrap=column == "scenario")
    for scenario, outcome, offered in rows:
        c = outcome.counts
        table.add_row(
            scenario.name, scenario.fault, str(sum(c.values())), str(c["in time"]), str(c["busy in time"]),
            str(c["late"]), str(c["busy late"]), f"[red]{c['lost']}[/red]" if c["lost"] else "0",
            str(outcome.runs_max), f"{outcome.runs_mean:.2f}", str(outcome.duplicates),
            str(outcome.rows_per_key_max), f"[red]{outcome.not_kept}[/red]" if outcome.not_kept else "0",
        )
    console.print(table)
    uname = platform.uname()
    console.print(
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {uname.system} {uname.release} {uname.machine}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; total {total:.0f} s\n"
        f"settings: SISONG_REPLY_DEADLINE={effective.reply_deadline:g} SISONG_DB_TIMEOUT={effective.db_timeout:g} "
        f"SISONG_REDIS_TIMEOUT={effective.redis_timeout:g} SISONG_BREAKER_SECONDS={effective.breaker_seconds:g} "
        f"SISONG_CLAIM_LEASE={effective.claim_lease:g} SISONG_SWEEP_INTERVAL={effective.sweep_interval:g} "
        f"SISONG_HANDLER_THREADS={effective.handler_threads}; WeChat: {WECHAT_TIMEOUT:g} s x {WECHAT_ATTEMPTS} "
        f"attempts; message \"{CONTENT}\", one follower per MsgId"
    )
    for name, events, logs, outcome in details:
        lat = (f"passive reply p50 {outcome.passive_p50 * 1000:.0f} ms, p99 {outcome.passive_p99 * 1000:.0f} ms"
               if outcome.passive_p50 is not None else "no passive reply")
        console.print(f"\n[bold]{name}[/bold]: message_log {dict(outcome.statuses)}; attempts by WeChat "
                      f"{dict(outcome.tries)}; {lat}; error replies {outcome.errors_replied}; kept for a cadre "
                      f"(kb_unanswered) {outcome.for_cadre}", highlight=False)
        spans = ", ".join(f"{kind} {a:.1f}-{b:.1f}s" for kind, (a, b) in outcome.spans.items() if kind != "in time")
        if spans:
            console.print(f"  sent at: {spans}", highlight=False)
        for event in events:
            console.print(f"  {event}", highlight=False)
        for kind, lines in outcome.examples.items():
            for line in lines[:5]:
                console.print(f"  {kind}: {line}", highlight=False)
            if len(lines) > 5:
                console.print(f"  {kind}: … {len(lines) - 5} more", highlight=False)
        for line in logs:
            console.print(f"  log {line}", highlight=False, markup=False)
    console.print(f"\nserver logs: {workdir}")
    failed = any(o.counts["lost"] or o.not_kept for _, o, _ in rows)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
