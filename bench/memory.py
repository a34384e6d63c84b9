"""Memory per web worker over 100,000 messages: flat, and at most 250 MB (issue 13).

Why: a cache keyed by follower or by message (sessions, rate-limit buckets,
dedupe memory, per-query arrays) grows without bound only under real traffic;
a test with a few hundred messages cannot see it. This starts
``sisong serve`` from this tree on PostgreSQL + Redis with 2 workers
(SISONG_BENCH_DATABASE_URL / SISONG_BENCH_REDIS_URL, as bench/webhook.py),
sends distinct policy questions (tests/data/qa_eval.jsonl), one MsgId each,
from many followers (default 20,000, each writing once per round of
followers, so none comes near SISONG_FOLLOWER_RATE), over 32 keep-alive
connections, signed in chunks right before they are sent (the 300 s
signature window stays on). Each worker's RSS (from /proc) is sampled after
warm-up and after every chunk (10,000 messages).

Prints the table and the verdict: flat when no worker grew by more than
``--flat-mb`` (5 MB) over the last half, and every worker at or under 250 MB at
the end. Replies that are not a 200 with XML, or say "系统繁忙", are counted.
Exits 1 if the verdict fails, so it can gate a change by hand; it is not run
by the test suite.

    python bench/memory.py [--messages 100000] [--followers 20000] [--every 10000] [--connections 32]
        [--uvicorn-healthcheck SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhook import (  # noqa: E402
    FAIL_TEXTS,
    Signer,
    policy_questions,
    raw_http,
    start_sisong,
    tree_pids,
)

LIMIT_MB = 250.0


def rss_mb(pid: int) -> float:
    """Resident set size in MB; 0 for a process that has gone (the next sample reports the replacement)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(master: int) -> list[int]:
    """uvicorn's worker processes: the children of ``sisong serve`` that run the app.

    multiprocessing's resource tracker is a child too; it is told apart by its command line.
    """
    out = []
    for pid in tree_pids(master)[1:]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            out.append(pid)
    return sorted(out)


def chunk(start: int, count: int, followers: int, port: int, questions: list[str], tag: str,
          base_id: int, signer: Signer) -> list[bytes]:
    """Messages ``start`` … ``start + count - 1``: follower ``i % followers``, MsgId ``base_id + i``."""
    now = int(time.time())
    out = []
    for i in range(start, start + count):
        openid = f"oM{tag}{i % followers:018d}"
        xml = signer.sim.text(questions[i % len(questions)], msg_id=base_id + i, openid=openid, create_time=now)
        out.append(raw_http(signer.sign(xml, openid, str(now), str(1_000_000_000 + i)), port))
    return out


async def _connection(port: int, queue: asyncio.Queue[bytes], counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            try:
                request = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            if status != 200:
                counts["non-200"] += 1
            elif not body.lstrip().startswith(b"<xml>"):
                counts["not XML"] += 1
            elif any(text.encode() in body for text in FAIL_TEXTS):
                counts["failure text"] += 1
            counts["sent"] += 1
    finally:
        writer.close()


async def drive(port: int, requests: list[bytes], connections: int, counts: dict[str, int]) -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    await asyncio.gather(*(_connection(port, queue, counts) for _ in range(connections)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--followers", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=10_000, help="messages between two RSS samples")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2_000, help="messages before the first sample")
    parser.add_argument("--flat-mb", type=float, default=5.0, help="allowed growth over the last half")
    parser.add_argument("--uvicorn-healthcheck", type=float, metavar="SECONDS",
                        help="raise uvicorn's 5 s worker health check (a busy machine; see bench/webhook.py)")
    args = parser.parse_args()
    # A SIGTERM (a timeout around the bench) must still stop the server it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import secrets

    import uvloop

    console = Console(width=None if sys.stdout.isatty() else 150)
    questions = policy_questions()
    signer = Signer("plain")
    tag = secrets.token_hex(4)
    base_id = time.time_ns() // 1000
    counts = {"sent": 0, "non-200": 0, "not XML": 0, "failure text": 0}
    samples: list[tuple[int, float, float, list[float]]] = []  # messages, seconds, msg/s, RSS per worker
    replaced: list[str] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sisong-memory-") as tmp:
        target = start_sisong("server", Path(tmp), None, args.uvicorn_healthcheck)
        try:
            master = target.procs[0].pid
            # Warm-up from followers outside the measured set: loads the handbook, fills pools.
            warm = chunk(0, args.warmup, args.warmup, target.port, questions, "w" + tag[1:], base_id, signer)
            uvloop.run(drive(target.port, warm, args.connections, dict.fromkeys(counts, 0)))
            base_id += args.warmup
            # The workers, once up and warm (uvicorn may replace a worker that was slow to start).
            deadline = time.monotonic() + 30
            while len(workers := worker_pids(master)) != 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            if len(workers) != 2:
                raise SystemExit(f"expected 2 workers under pid {master}, found {workers}")
            clock = time.monotonic()
            samples.append((0, 0.0, 0.0, [rss_mb(pid) for pid in workers]))
            sent = 0
            while sent < args.messages:
                count = min(args.every, args.messages - sent)
                requests = chunk(sent, count, args.followers, target.port, questions, tag, base_id, signer)
                t0 = time.monotonic()
                uvloop.run(drive(target.port, requests, args.connections, counts))
                rate = count / (time.monotonic() - t0)
                sent += count
                now_workers = worker_pids(master)
                if now_workers != workers:
                    # A replaced worker starts small again: say so, the table is not flat evidence then.
                    replaced.append(f"at {sent:,} messages: workers {workers} -> {now_workers}")
                    console.print(f"[red]worker replaced {replaced[-1]}[/red]")
                    if len(now_workers) != len(workers):
                        raise SystemExit(f"worker count changed: {workers} -> {now_workers}")
                    workers = now_workers
                samples.append((sent, time.monotonic() - clock, rate, [rss_mb(pid) for pid in workers]))
                console.print(f"[dim]{sent:,} messages, {rate:,.0f} msg/s, RSS "
                              f"{', '.join(f'{mb:.1f}' for mb in samples[-1][3])} MB[/dim]")
        finally:
            target.stop()

    table = Table(title=f"RSS per web worker, sisong serve on PostgreSQL + Redis, 2 workers, {args.messages:,} "
                        f"messages from {args.followers:,} followers, {started}")
    table.add_column("messages", justify="right")
    table.add_column("elapsed s", justify="right")
    table.add_column("msg/s (chunk)", justify="right")
    for index in range(len(workers)):
        table.add_column(f"worker {index + 1} MB", justify="right")
    for sent, elapsed, rate, rss in samples:
        table.add_row(f"{sent:,}", f"{elapsed:.0f}", f"{rate:,.0f}" if rate else "-", *(f"{mb:.1f}" for mb in rss))
    console.print(table)

    half = next(i for i, s in enumerate(samples) if s[0] >= args.messages / 2)
    growth = [samples[-1][3][w] - samples[half][3][w] for w in range(len(workers))]
    total_growth = [samples[-1][3][w] - samples[0][3][w] for w in range(len(workers))]
    final = samples[-1][3]
    flat = all(g <= args.flat_mb for g in growth)
    small = all(mb <= LIMIT_MB for mb in final)
    per_message = [g * 1024 / max(1, args.messages - samples[half][0]) for g in growth]
    console.print(f"growth over the last half ({samples[half][0]:,} → {samples[-1][0]:,} messages): "
                  + ", ".join(f"{g:+.1f} MB ({kb:.2f} KB a message)" for g, kb in zip(growth, per_message))
                  + f"; over the whole run: {', '.join(f'{g:+.1f} MB' for g in total_growth)}")
    console.print(f"flat (≤ {args.flat_mb:g} MB over the last half): {'yes' if flat else 'NO'}; "
                  f"≤ {LIMIT_MB:g} MB at the end: {'yes' if small else 'NO'} (max {max(final):.1f} MB)")
    bad = counts["non-200"] + counts["not XML"] + counts["failure text"]
    console.print(f"replies: {counts['sent']:,}; not answered: {bad:,} (non-200 {counts['non-200']:,}, "
                  f"not XML {counts['not XML']:,}, failure text {counts['failure text']:,})")
    uname = os.uname()
    console.print(f"{uname.sysname} {uname.release} {uname.machine}, {os.cpu_count()} CPUs, Python "
                  f"{sys.version.split()[0]}, load average (1 min) {load_before:.2f} before, "
                  f"{os.getloadavg()[0]:.2f} after")
    for event in replaced:
        console.print(f"[red]worker replaced {event}: its RSS restarted from scratch[/red]")
    if replaced or not (flat and small):
        sys.exit(1)


if __name__ == "__main__":
    main()
