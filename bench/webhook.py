"""Webhook throughput and latency beside the peer, in one run (issue 13).

Why: a figure for Sisong alone says little on a shared 2-core machine; the
same load generator against WeRoBot (the Python WeChat framework people pick
instead) in the same run gives a ratio that survives a noisy machine.

What runs, alternating target by target within each mode:

* the peer: a WeRoBot text echo (bench/peer_werobot.py) under gunicorn, 2
  workers of the ``sync`` class (gunicorn's default, and what WeRoBot's
  ``robot.run(server="gunicorn")`` starts through bottle), signature checked;
* Sisong (``sisong serve`` from this tree) answering policy questions: the
  embedded SQLite setup (1 worker, a fresh database) and PostgreSQL + Redis
  (``SISONG_WORKERS=2``; SISONG_BENCH_DATABASE_URL / SISONG_BENCH_REDIS_URL);
  the WeChat API points at a closed local port, so late answers (the deadline
  hand-off) fail at once and never leave the machine;
* plain and safe (AES) mode.

Load is wrk, 2 threads x 32 keep-alive connections, closed loop. wrk cannot
sign, so each run's requests are signed right before it (fresh timestamps,
the server's 300 s signature window stays on), one MsgId each, questions from
tests/data/qa_eval.jsonl (the sample handbook Sisong loads on an empty
database), spread over new followers, at most 8 messages each, so none comes
near SISONG_FOLLOWER_RATE. A 2 s warm-up first sizes the signed set; a Sisong
run that used a request twice (a dedupe hit, not the full path) is redone
with twice the set, then flagged. The peer, which keeps no state, may reuse
its set. Every reply is checked (bench/presigned.lua): only a 200 with XML
that is not "系统繁忙" or another failure text counts as throughput; in safe
mode that text is encrypted, so a sample of replies is decrypted and its
failure share applied. For Sisong, /metrics before and after each run says
which handlers ran. Before each run the bench waits for every server to go
idle (an overloaded Sisong keeps working through its backlog).

Then p99 at a fixed offered rate (``--rate``, default 1000 msg/s, plain mode,
5 s): an open-loop asyncio generator in this process sends on schedule
whatever the replies do (latency counts from the scheduled time, so a slow
server cannot slow the load down; up to 512 connections) and prints the rate
it achieved and its own lag, to prove it kept up.

Prints tables, the machine and its load, and the Sisong servers' logged
warnings; asserts nothing. ``--uvicorn-healthcheck`` is for a busy machine
where uvicorn kills 2-worker Sisong's workers before they are up (see
start_sisong).

    python bench/webhook.py [--seconds 10] [--connections 32] [--threads 2]
        [--only sisong|peer] [--setup sqlite|server|both] [--mode plain|safe|both]
        [--rate 1000 (0: skip)] [--rate-seconds 5] [--rate-mode plain|safe|both] [--handler-threads N]
        [--uvicorn-healthcheck SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.table import Table
from wechatpy.crypto import PrpCrypto

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.simulator import SignedRequest, WeChatSimulator  # noqa: E402

TOKEN = "benchtoken"
APPID = "wxbenchappid"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
LUA = Path(__file__).with_name("presigned.lua")
QUESTIONS = ROOT / "tests" / "data" / "qa_eval.jsonl"
# Reply texts that mean the message was not answered (bot/pipeline.py BUSY_TEXT, ERROR_TEXT; the
# too-fast notice of handlers/too_fast.py): such a reply is a failure, not throughput.
FAIL_TEXTS = ("系统繁忙", "出了点小问题", "您发得有点快")
SETUPS = {"sqlite": "Sisong SQLite", "server": "Sisong PG+Redis"}
PEER = "WeRoBot echo"
LEGEND = ("WeRoBot echo: bench/peer_werobot.py, gunicorn 2 sync workers; Sisong SQLite: embedded, 1 worker; "
          "Sisong PG+Redis: PostgreSQL + Redis, SISONG_WORKERS=2")

console = Console(width=None if sys.stdout.isatty() else 170)


# --------------------------------------------------------------------------- requests


def policy_questions() -> list[str]:
    """Single-turn household questions the sample handbook answers (no hand-over expected)."""
    out: list[str] = []
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if not row.get("handover") and not row.get("context") and row["question"] not in out:
            out.append(row["question"])
    if len(out) < 50:
        raise SystemExit(f"{QUESTIONS} has only {len(out)} single-turn questions; the bench wants 50")
    return out


def _sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


class Signer:
    """Signs and encrypts like bot.simulator.WeChatSimulator.sign, without re-parsing its own XML.

    The simulator parses every message back with xmltodict to find the
    addressee (it accepts malformed XML on purpose); here the XML is ours, so
    that parse (half the cost) is skipped. A wrong signature or body would show
    as 403s in the tables: the servers check every request.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sim = WeChatSimulator(TOKEN, APPID, AES_KEY if mode == "safe" else None, mode=mode)
        self.prp = PrpCrypto(base64.b64decode(AES_KEY + "=")) if mode == "safe" else None

    def sign(self, xml: str, openid: str, timestamp: str, nonce: str) -> SignedRequest:
        params = {"signature": _sha1(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                  "openid": openid}
        if self.prp is None:
            return SignedRequest(params=params, body=xml.encode())
        encrypt = self.prp.encrypt(xml, APPID).decode("ascii")
        params["encrypt_type"] = "aes"
        params["msg_signature"] = _sha1(TOKEN, timestamp, nonce, encrypt)
        body = f"<xml><ToUserName><![CDATA[{self.sim.account}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return SignedRequest(params=params, body=body.encode())


def raw_http(request: SignedRequest, port: int) -> bytes:
    head = (
        f"POST /wechat?{urlencode(request.params)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(request.body)}\r\n\r\n"
    )
    return head.encode() + request.body


def presign(mode: str, count: int, port: int, questions: list[str], per_follower: int = 8) -> list[bytes]:
    """``count`` distinct signed messages: new followers (a tag per call), each sending at most
    ``per_follower``, each message its own MsgId, all stamped now."""
    signer = Signer(mode)
    now = int(time.time())
    tag = secrets.token_hex(4)
    followers = max(1000, math.ceil(count / per_follower))
    base_id = time.time_ns() // 1000
    out = []
    for i in range(count):
        openid = f"oB{tag}{i % followers:018d}"  # 28 characters, like WeChat's
        xml = signer.sim.text(questions[i % len(questions)], msg_id=base_id + i, openid=openid, create_time=now)
        out.append(raw_http(signer.sign(xml, openid, str(now), str(1_000_000_000 + i)), port))
    return out


def decode_reply(mode: str, body: bytes) -> str:
    """The reply's text as the follower would see it; raises ValueError for what WeChat would reject."""
    sim = WeChatSimulator(TOKEN, APPID, AES_KEY if mode == "safe" else None, mode=mode)
    request = SignedRequest(params={"encrypt_type": "aes"} if mode == "safe" else {}, body=b"")
    reply = sim.decode(200, body, request)
    if reply.text is None:
        raise ValueError(f"not a text reply: {body[:80]!r}")
    return reply.text


def is_failure(text: str) -> bool:
    return any(fail in text for fail in FAIL_TEXTS)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    """One server under test."""

    key: str  # "peer", "sqlite", "server"
    label: str
    port: int
    procs: list[subprocess.Popen[bytes]]
    log: Path | None = None
    mode: str | None = None  # the peer runs one robot per mode

    @property
    def is_sisong(self) -> bool:
        return self.key != "peer"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def server_env() -> dict[str, str]:
    """This environment without SISONG_ settings and without PYTHONDONTWRITEBYTECODE.

    A server imports the project from compiled bytecode, as an installed one
    does; with PYTHONDONTWRITEBYTECODE set (some shells and CI set it) every
    process compiled bot/, storage/, knowledge/ from source on each start,
    several seconds on a busy machine, and uvicorn killed the spawned workers
    as hung (its 5 s health check) before they were up.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISONG_") and k != "PYTHONDONTWRITEBYTECODE"}
    if not getattr(server_env, "compiled", False):
        subprocess.run([sys.executable, "-m", "compileall", "-q", "bot", "storage", "handlers", "knowledge", "bench"],
                       cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
        server_env.compiled = True  # type: ignore[attr-defined]
    return env


def sisong_env(port: int, workdir: Path, setup: str, handler_threads: int | None) -> dict[str, str]:
    env = server_env()
    env.update(
        SISONG_WECHAT_TOKEN=TOKEN,
        SISONG_WECHAT_APPID=APPID,
        SISONG_WECHAT_SECRET="bench-secret",
        SISONG_WECHAT_AES_KEY=AES_KEY,
        SISONG_PORT=str(port),
        SISONG_LOG_LEVEL="WARNING",
        SISONG_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        PYTHONPATH=str(ROOT),
    )
    if handler_threads:
        env["SISONG_HANDLER_THREADS"] = str(handler_threads)
    # Late answers (the deadline hand-off) go out as customer-service messages: point the WeChat
    # API at a closed local port so they fail at once and never leave the machine.
    env["SISONG_WECHAT_API_BASE"] = f"http://127.0.0.1:{free_port()}/cgi-bin/"
    if setup == "server":
        env["SISONG_DATABASE_URL"] = os.environ.get(
            "SISONG_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/test"
        )
        env["SISONG_REDIS_URL"] = os.environ.get("SISONG_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        env["SISONG_WORKERS"] = "2"
    return env


def tree_pids(root: int) -> list[int]:
    """``root`` and every process under it (uvicorn's workers, gunicorn's, their helpers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        out.extend(children)
        frontier = children
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def settle(targets: list[Target], limit: float = 90) -> float:
    """Wait until every server's processes are nearly idle (< 10 % of a core over half a second).

    After an overload (the fixed-rate test on a slow setup) Sisong still has
    handler work queued behind the deadline hand-off; the next run, on this
    server or another, must not pay for it. Returns the seconds waited.
    """
    started = time.monotonic()
    pids = [pid for target in targets for pid in tree_pids(target.procs[0].pid)]
    while time.monotonic() - started < limit:
        before = cpu_seconds(pids)
        time.sleep(0.5)
        if cpu_seconds(pids) - before < 0.05:
            break
    return time.monotonic() - started


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], what: str, log: Path | None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise SystemExit(f"{what} exited while starting\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    for proc in procs:
        proc.terminate()  # not kill: uvicorn's and gunicorn's masters stop their workers on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    tail = log.read_text(errors="replace")[-1500:] if log else ""
    if "died" in tail:
        tail += ("\n(uvicorn kills a worker that does not answer its 5 s health check; a worker still "
                 "importing bot.cli on a busy machine is killed and replaced, again and again)")
    raise SystemExit(f"{what} did not start in 120 s\n{tail}")


HEALTHCHECK_SHIM = """\
# Written by bench/webhook.py --uvicorn-healthcheck: uvicorn's worker health-check timeout for
# `sisong serve`, which does not set it (5 s); nothing else of the server is touched.
import uvicorn.config

_init = uvicorn.config.Config.__init__


def _patched(self, *args, **kwargs):
    # uvicorn.run passes its own default (5) explicitly, so set it rather than setdefault.
    kwargs["timeout_worker_healthcheck"] = max(kwargs.get("timeout_worker_healthcheck") or 0, {seconds})
    _init(self, *args, **kwargs)


uvicorn.config.Config.__init__ = _patched
"""


def start_sisong(setup: str, workdir: Path, handler_threads: int | None, healthcheck: float | None = None) -> Target:
    """``sisong serve`` from this tree; ``healthcheck`` raises uvicorn's 5 s worker health check.

    On a busy 2-core machine a spawned worker can take longer than 5 s to import bot.cli (its
    __main__), above all without compiled bytecode (see ``server_env``); uvicorn then kills it as
    hung and starts another, which fares no better, and the 2-worker setup never comes up. The
    option is for measuring on such a machine; it changes nothing on the message path, and the
    bench says when it was used.
    """
    port = free_port()
    env = sisong_env(port, workdir, setup, handler_threads)
    if healthcheck:
        shim = workdir / "shim"
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(HEALTHCHECK_SHIM.format(seconds=int(healthcheck)))
        env["PYTHONPATH"] = f"{shim}{os.pathsep}{env['PYTHONPATH']}"
    log = workdir / f"sisong-{setup}.log"
    if setup == "server":
        subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, check=True, cwd=workdir,
                       stdout=subprocess.DEVNULL)
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=workdir,
                                stdout=sink, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}/healthz", [proc], f"sisong serve ({setup})", log)
    return Target(setup, SETUPS[setup], port, [proc], log)


def start_peer(mode: str, workdir: Path) -> Target:
    port = free_port()
    env = server_env()
    env.update(PEER_TOKEN=TOKEN, PEER_APPID=APPID, PYTHONPATH=str(ROOT))
    if mode == "safe":
        env["PEER_AES_KEY"] = AES_KEY
    log = workdir / f"peer-{mode}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
             "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "bench.peer_werobot:application"],
            env=env, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT)
    check = WeChatSimulator(TOKEN, APPID).url_check("ready")
    wait_ready(f"http://127.0.0.1:{port}/wechat?{urlencode(check)}", [proc], f"gunicorn peer ({mode})", log)
    return Target("peer", PEER, port, [proc], log, mode)


def smoke(target: Target, mode: str, questions: list[str]) -> str:
    """One signed question through httpx and the simulator's decoder: the setup answers at all."""
    raw = presign(mode, 1, target.port, questions[3:4])[0]
    head, body = raw.split(b"\r\n\r\n", 1)
    path = head.split(b" ")[1].decode()
    try:
        response = httpx.post(f"http://127.0.0.1:{target.port}{path}", content=body,
                              headers={"Content-Type": "text/xml"}, timeout=30)
    except httpx.HTTPError as exc:
        state = ", ".join(f"pid {p.pid} {'running' if p.poll() is None else f'exited {p.returncode}'}"
                          for p in target.procs)
        tail = target.log.read_text(errors="replace")[-2000:] if target.log else ""
        raise SystemExit(f"{target.label} {mode}: smoke request failed ({exc}); {state}\n{tail}") from None
    if response.status_code != 200:
        raise SystemExit(f"{target.label} {mode}: smoke request got {response.status_code}")
    text = decode_reply(mode, response.content)
    if is_failure(text):
        raise SystemExit(f"{target.label} {mode}: smoke request answered {text!r}")
    return text


# --------------------------------------------------------------------------- metrics


METRIC_LINE = re.compile(r'^(sisong_handler_outcomes_total|sisong_dedupe_hits_total|sisong_webhook_requests_total)'
                         r'(?:\{([^}]*)\})? ([0-9.e+]+)$')


def scrape(target: Target) -> Counter[str]:
    """Sisong's own counters (all workers): handler runs by handler/outcome, dedupe hits, statuses."""
    out: Counter[str] = Counter()
    try:
        text = httpx.get(f"http://127.0.0.1:{target.port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return out
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        if name == "sisong_handler_outcomes_total":
            key = f"{pairs.get('handler')} {pairs.get('outcome')}"
        elif name == "sisong_dedupe_hits_total":
            key = "dedupe hit"
        elif pairs.get("method") == "POST":
            key = f"POST {pairs.get('status')}"
        else:
            continue
        out[key] += int(float(value))
    return out


def describe(before: Counter[str], after: Counter[str]) -> str:
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
    return ", ".join(f"{k} {v:,}" for k, v in sorted(diff.items(), key=lambda kv: -kv[1])) or "-"


# --------------------------------------------------------------------------- closed loop (wrk)


@dataclass
class Result:
    target: str
    label: str
    mode: str
    requests: int = 0
    seconds: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    socket_errors: int = 0
    bad_status: int = 0
    not_xml: int = 0
    fail_text: int = 0
    sampled: int = 0
    sampled_bad: int = 0
    wraps: int = 0
    signed: int = 0
    server: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def bad(self) -> float:
        """Replies that are not throughput: exact counts, plus in safe mode the decrypted sample's
        failure share applied to the XML replies (their text cannot be read in Lua)."""
        exact = self.bad_status + self.not_xml + self.fail_text
        if self.sampled and self.sampled_bad:
            xml_replies = self.requests - exact
            return exact + xml_replies * self.sampled_bad / self.sampled
        return exact

    @property
    def good_rate(self) -> float:
        return max(0.0, self.requests - self.bad) / self.seconds if self.seconds else 0.0


def run_wrk(target: Target, mode: str, requests: list[bytes], seconds: float, threads: int, connections: int,
            workdir: Path, questions: set[str]) -> Result:
    prefix = workdir / "requests"
    for index in range(threads):
        with open(f"{prefix}.{index}", "wb") as out:
            for request in requests[index::threads]:
                out.write(b"%d\n" % len(request))
                out.write(request)
    keep = 200  # bodies kept per wrk thread, spread over the signed set
    every = max(1, len(requests) // (keep * threads))
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(LUA), f"http://127.0.0.1:{target.port}/wechat",
               "--", str(prefix), str(threads), str(every), str(keep), str(workdir / "replies")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or "BENCH " not in done.stdout:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    result = Result(target.key, target.label, mode)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH ") or line.startswith("THREAD "):
            values = {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}
            if line.startswith("BENCH "):
                result.requests = values["requests"]
                result.seconds = values["duration_us"] / 1e6
                result.p50, result.p99, result.max = (values[k] / 1000 for k in ("p50_us", "p99_us", "max_us"))
                result.socket_errors = sum(values[k] for k in ("connect", "read", "write", "timeout"))
            else:
                result.bad_status += values["status"]
                result.not_xml += values["notxml"]
                result.fail_text += values["failtext"]
                result.wraps += values["wraps"]
                result.signed += values["signed"]
    # Decode the kept replies: in safe mode this is the only look at the text; in both modes a
    # peer reply must echo a question and a Sisong reply must not be a failure text.
    for index in range(threads):
        data = Path(f"{workdir / 'replies'}.{index}.samples").read_bytes()
        pos = 0
        while pos < len(data):
            newline = data.index(b"\n", pos)
            length = int(data[pos:newline])
            body = data[newline + 1:newline + 1 + length]
            pos = newline + 1 + length
            if not body.lstrip().startswith(b"<xml>"):
                continue  # counted exactly above
            result.sampled += 1
            try:
                text = decode_reply(mode, body)
                wrong = is_failure(text) if target.is_sisong else text not in questions
            except ValueError:
                wrong = True
            result.sampled_bad += wrong
    if mode == "plain" and target.is_sisong:
        result.sampled_bad = 0  # plain failure texts were counted exactly in Lua
    return result


def closed_loop(target: Target, mode: str, args: argparse.Namespace, workdir: Path,
                questions: list[str], everyone: list[Target]) -> Result:
    """Warm-up (sizes the signed set), then the measured run; once more with twice the set if a
    Sisong run had to reuse requests."""
    waited = settle(everyone)
    warm = run_wrk(target, mode, presign(mode, 6000, target.port, questions), 2, args.threads,
                   args.connections, workdir, set(questions))
    rate = max(warm.requests / max(warm.seconds, 0.1), 300)
    size = math.ceil(rate * args.seconds * 1.6) + args.connections * 4
    if not target.is_sisong:
        size = min(size, 20_000)  # the echo keeps no state: reusing a signed request costs it nothing
    for _attempt in range(2):
        waited += settle(everyone)
        before = scrape(target) if target.is_sisong else Counter()
        result = run_wrk(target, mode, presign(mode, size, target.port, questions), args.seconds, args.threads,
                         args.connections, workdir, set(questions))
        if target.is_sisong:
            result.server = describe(before, scrape(target))
        if waited > 2:
            result.notes.append(f"waited {waited:.0f} s for the server to go idle first")
        if not target.is_sisong or result.wraps == 0:
            return result
        size *= 2
    result.notes.append(f"reused signed requests ({result.wraps} wraps): rate overstated")
    return result


# --------------------------------------------------------------------------- open loop (fixed rate)


@dataclass
class OpenLoopResult:
    target: str
    label: str
    mode: str
    offered: float
    sent_rate: float
    done_rate: float
    lag_p99: float
    lag_max: float
    p50: float
    p99: float
    max: float
    bad: int
    errors: int
    connections: int
    gen_cpu: float
    waited: float


class _Pool:
    """Keep-alive connections for the open-loop generator, at most ``limit`` at once.

    A request that finds every connection busy waits for one (its latency
    still counts from its scheduled time); a connection the server closed
    (gunicorn's sync workers close after each reply) frees its slot.
    """

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.peak = 0

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await self.slots.acquire()
        if self.idle:
            return self.idle.pop()
        try:
            conn = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.slots.release()
            raise
        self.opened += 1
        self.peak = max(self.peak, self.opened)
        return conn

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], reusable: bool) -> None:
        if reusable:
            self.idle.append(conn)
        else:
            conn[1].close()
            self.opened -= 1
        self.slots.release()


async def _exchange(pool: _Pool, request: bytes) -> tuple[int, bytes, bool]:
    reader, writer = conn = await pool.get()
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await reader.readexactly(length)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        pool.put(conn, False)
        raise
    pool.put(conn, not close)
    return status, body, close


async def _open_loop(port: int, requests: list[bytes], rate: float, limit: int):
    # Timestamps from perf_counter: the event loop's clock (libuv's) ticks in whole milliseconds.
    clock = time.perf_counter
    pool = _Pool(port, limit)
    start = clock() + 0.2
    records: list[tuple[float, float, float, int, bytes]] = []  # scheduled, started, finished, status, body
    errors = 0

    async def one(scheduled: float, request: bytes) -> None:
        nonlocal errors
        started = clock()
        try:
            status, body, _ = await _exchange(pool, request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            errors += 1
            return
        records.append((scheduled, started, clock(), status, body))

    tasks = []
    for index, request in enumerate(requests):
        scheduled = start + index / rate
        delay = scheduled - clock()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled, request)))
    await asyncio.gather(*tasks)
    for conn in pool.idle:
        conn[1].close()
    return records, errors, pool.peak


def open_loop(target: Target, mode: str, rate: float, seconds: float, questions: list[str],
              everyone: list[Target]) -> OpenLoopResult:
    import uvloop

    waited = settle(everyone, limit=180)
    requests = presign(mode, int(rate * seconds), target.port, questions)
    cpu = time.process_time()
    records, errors, peak = uvloop.run(_open_loop(target.port, requests, rate, 512))
    cpu = time.process_time() - cpu
    bad = 0
    latencies = []
    for scheduled, _started, finished, status, body in records:
        latencies.append(finished - scheduled)
        if status != 200:
            bad += 1
            continue
        try:
            text = decode_reply(mode, body)
        except ValueError:
            bad += 1
            continue
        bad += is_failure(text) if target.is_sisong else text not in questions
    latencies.sort()
    lags = sorted(started - scheduled for scheduled, started, *_ in records)
    first = min(r[1] for r in records)
    last_sent = max(r[1] for r in records)
    last_done = max(r[2] for r in records)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0

    span = max(last_sent - first, 1e-9)
    return OpenLoopResult(
        target.key, target.label, mode, rate,
        sent_rate=(len(records) - 1) / span,
        done_rate=len(records) / max(last_done - first, 1e-9),
        lag_p99=pct(lags, 0.99), lag_max=lags[-1] * 1000 if lags else 0.0,
        p50=pct(latencies, 0.50), p99=pct(latencies, 0.99), max=latencies[-1] * 1000 if latencies else 0.0,
        bad=bad, errors=errors, connections=peak, gen_cpu=cpu / max(last_done - first, 1e-9), waited=waited,
    )


# --------------------------------------------------------------------------- report


def log_summary(target: Target) -> list[str]:
    """Warnings and errors a Sisong server logged during the bench, counted by first line."""
    if not target.log or not target.log.exists():
        return []
    counts: Counter[str] = Counter()
    for line in target.log.read_text(errors="replace").splitlines():
        if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line):
            counts[re.sub(r"\d+", "N", line.strip())[:160]] += 1
    return [f"{n:>6} × {text}" for text, n in counts.most_common(8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--only", choices=("sisong", "peer"), help="measure only one side")
    parser.add_argument("--setup", choices=("sqlite", "server", "both"), default="both")
    parser.add_argument("--mode", choices=("plain", "safe", "both"), default="both")
    parser.add_argument("--rate", type=float, default=1000, help="offered msg/s of the fixed-rate test (0: skip)")
    parser.add_argument("--rate-seconds", type=float, default=5, help="length of the fixed-rate test")
    parser.add_argument("--rate-mode", choices=("plain", "safe", "both"), default="plain",
                        help="modes of the fixed-rate test (among --mode)")
    parser.add_argument("--handler-threads", type=int, help="SISONG_HANDLER_THREADS (default: the server's)")
    parser.add_argument("--uvicorn-healthcheck", type=float, metavar="SECONDS",
                        help="raise uvicorn's 5 s worker health check (a busy machine; see start_sisong)")
    args = parser.parse_args()
    # A SIGTERM (a timeout around the bench) must still stop the servers it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    modes = ("plain", "safe") if args.mode == "both" else (args.mode,)
    setups = ("sqlite", "server") if args.setup == "both" else (args.setup,)
    questions = policy_questions()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    results: list[Result] = []
    fixed: list[OpenLoopResult] = []
    smokes: dict[str, str] = {}
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="sisong-bench-") as tmp:
        workdir = Path(tmp)
        try:
            # One at a time into `targets`, so a server that fails to start does not leave the others running.
            sisongs: list[Target] = []
            for setup in setups if args.only != "peer" else ():
                sisongs.append(start_sisong(setup, workdir, args.handler_threads, args.uvicorn_healthcheck))
                targets.append(sisongs[-1])
            peers: dict[str, Target] = {}
            for mode in modes if args.only != "sisong" else ():
                peers[mode] = start_peer(mode, workdir)
                targets.append(peers[mode])
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            for mode in modes:
                for target in ([peers[mode]] if mode in peers else []) + sisongs:
                    smokes[f"{target.label}, {mode}"] = smoke(target, mode, questions)
                    console.print(f"[dim]{time.strftime('%H:%M:%S')} {target.label}, {mode} …[/dim]")
                    results.append(closed_loop(target, mode, args, workdir, questions, targets))
            if args.rate > 0:
                for mode in [m for m in modes if args.rate_mode in (m, "both")]:
                    for target in ([peers[mode]] if mode in peers else []) + sisongs:
                        console.print(f"[dim]{time.strftime('%H:%M:%S')} {target.label}, {mode}, "
                                      f"{args.rate:,.0f} msg/s offered …[/dim]")
                        fixed.append(open_loop(target, mode, args.rate, args.rate_seconds, questions, targets))
        finally:
            for target in targets:
                target.stop()
        logs = {t.label: log_summary(t) for t in targets if t.is_sisong}

    peer_rate = {r.mode: r.good_rate for r in results if r.target == "peer"}
    plain_rate = {r.target: r.good_rate for r in results if r.mode == "plain"}
    table = Table(title=f"webhook, closed loop: wrk {args.threads} threads × {args.connections} connections, "
                        f"{args.seconds:g} s a run, {started}")
    for column in ("setup", "mode", "msg/s", "p50 ms", "p99 ms", "max ms", "non-2xx / socket errors",
                   "bad replies", "× WeRoBot", "safe / plain"):
        table.add_column(column, justify="left" if column in ("setup", "mode") else "right")
    for r in results:
        bad = f"{r.bad:,.0f}" if not (r.sampled_bad and r.mode == "safe") else f"≈{r.bad:,.0f}"
        bad += f" ({r.not_xml:,} not XML)" if r.not_xml else ""
        ratio = f"{r.good_rate / peer_rate[r.mode]:.2f}" if r.target != "peer" and peer_rate.get(r.mode) else ""
        safe = f"{r.good_rate / plain_rate[r.target]:.2f}" if r.mode == "safe" and plain_rate.get(r.target) else ""
        table.add_row(r.label, r.mode, f"{r.good_rate:,.0f}", f"{r.p50:.1f}", f"{r.p99:.1f}", f"{r.max:.0f}",
                      f"{r.bad_status:,} / {r.socket_errors:,}", bad, ratio, safe)
    console.print(table)
    console.print(LEGEND)
    console.print("msg/s counts only good replies (a 200 with XML that is not a failure text); safe-mode "
                  "failure texts are estimated from decrypted samples (≈).")
    for r in results:
        if r.server:
            console.print(f"  {r.label}, {r.mode}: {r.requests:,} replies, {r.signed:,} signed; server: {r.server}")
        for note in r.notes:
            console.print(f"  [red]{r.label}, {r.mode}: {note}[/red]")

    if fixed:
        table = Table(title=f"webhook, open loop at a fixed offered rate, {args.rate_seconds:g} s, asyncio generator")
        for column in ("setup", "mode", "offered", "dispatched msg/s", "generator lag p99 / max ms", "answered msg/s",
                       "p50 ms", "p99 ms", "max ms", "bad / errors", "connections", "generator CPU"):
            table.add_column(column, justify="left" if column in ("setup", "mode") else "right")
        for f in fixed:
            table.add_row(f.label, f.mode, f"{f.offered:,.0f}", f"{f.sent_rate:,.0f}",
                          f"{f.lag_p99:.1f} / {f.lag_max:.1f}", f"{f.done_rate:,.0f}", f"{f.p50:.1f}",
                          f"{f.p99:.1f}", f"{f.max:.0f}", f"{f.bad:,} / {f.errors:,}", str(f.connections),
                          f"{f.gen_cpu:.0%}")
        console.print(table)
        console.print("Latency counts from the scheduled send time. The generator kept up if 'dispatched msg/s' "
                      "is the offered rate and its lag (dispatch - schedule) stays at a few ms; a request that "
                      "then waits for one of the 512 connections waits inside its latency.")
        for f in fixed:
            if f.waited > 2:
                console.print(f"  {f.label}, {f.mode}: waited {f.waited:.0f} s for the server to go idle first")

    uname = os.uname()
    console.print(f"{started}, {uname.sysname} {uname.release} {uname.machine}, {os.cpu_count()} CPUs, Python "
                  f"{sys.version.split()[0]}, load average (1 min) {load_before:.2f} before, "
                  f"{os.getloadavg()[0]:.2f} after (this bench's own load included)")
    if args.uvicorn_healthcheck:
        console.print(f"uvicorn's worker health check raised to {args.uvicorn_healthcheck:g} s (--uvicorn-healthcheck)")
    for label, text in smokes.items():
        console.print(f"[dim]smoke reply, {label}: {text[:60]!r}[/dim]")
    for label, lines in logs.items():
        if lines:
            console.print(f"[yellow]{label}: warnings in the server log[/yellow]")
            for line in lines:
                console.print("  " + line, markup=False)


if __name__ == "__main__":
    main()
