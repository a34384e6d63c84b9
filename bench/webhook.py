"""Webhook throughput and latency: messages per second, p50/p99, plain and safe mode.

Starts ``sisong serve`` on loopback (embedded SQLite by default; ``--server``
uses the PostgreSQL and Redis from SISONG_BENCH_DATABASE_URL /
SISONG_BENCH_REDIS_URL with 2 workers), then drives it with pre-signed,
distinct messages over keep-alive connections from an asyncio load generator
in this process. Prints a table; asserts nothing.

    python bench/webhook.py [--messages 3000] [--concurrency 32] [--server] [--threads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.simulator import WeChatSimulator  # noqa: E402

TOKEN = "benchtoken"
APPID = "wxbenchappid"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, workdir: Path, server_stack: bool, threads: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISONG_")}
    env.update(
        SISONG_WECHAT_TOKEN=TOKEN,
        SISONG_WECHAT_APPID=APPID,
        SISONG_WECHAT_SECRET="bench-secret",
        SISONG_WECHAT_AES_KEY=AES_KEY,
        SISONG_PORT=str(port),
        SISONG_LOG_LEVEL="WARNING",
        SISONG_HANDLER_THREADS=str(threads),
        SISONG_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        PYTHONPATH=str(ROOT),
    )
    if server_stack:
        env["SISONG_DATABASE_URL"] = os.environ.get(
            "SISONG_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/test"
        )
        env["SISONG_REDIS_URL"] = os.environ.get("SISONG_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        env["SISONG_WORKERS"] = "2"
        subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, check=True, cwd=workdir)
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def build_requests(mode: str, count: int, port: int) -> list[bytes]:
    sim = WeChatSimulator(TOKEN, APPID, AES_KEY if mode != "plain" else None, mode=mode)
    out = []
    for i in range(count):
        signed = sim.sign(sim.text("帮助", openid=f"oBench{i % 500:020d}"))
        query = "&".join(f"{k}={v}" for k, v in signed.params.items())
        head = (
            f"POST /wechat?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(signed.body)}\r\n\r\n"
        )
        out.append(head.encode() + signed.body)
    return out


async def _connection(port: int, queue: asyncio.Queue[bytes], latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            try:
                request = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def drive(port: int, requests: list[bytes], concurrency: int) -> tuple[float, list[float], list[int]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, queue, latencies, errors) for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--server", action="store_true", help="PostgreSQL + Redis, 2 workers")
    parser.add_argument("--threads", type=int, default=8, help="SISONG_HANDLER_THREADS per worker")
    args = parser.parse_args()

    table = Table(title=f"webhook, {args.messages} messages, {args.concurrency} connections, "
                        f"{'PostgreSQL+Redis, 2 workers' if args.server else 'SQLite, 1 worker'}, {args.threads} threads")
    for column in ("mode", "msg/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start_server(port, Path(tmp), args.server, args.threads)
        try:
            for mode in ("plain", "safe"):
                warm = build_requests(mode, 200, port)
                asyncio.run(drive(port, warm, args.concurrency))
                requests = build_requests(mode, args.messages, port)
                elapsed, latencies, errors = asyncio.run(drive(port, requests, args.concurrency))
                table.add_row(
                    mode,
                    f"{len(latencies) / elapsed:,.0f}",
                    f"{statistics.median(latencies) * 1000:.1f}",
                    f"{percentile(latencies, 0.99) * 1000:.1f}",
                    str(len(errors)),
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    Console().print(table)


if __name__ == "__main__":
    main()
