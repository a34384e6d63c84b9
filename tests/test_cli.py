"""The ``sisong`` command line, run as cadres run it: real processes, real servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import APPID, BACKENDS, PG_URL, SECRET, TOKEN, reset_server_stores
from tests.support.fake_wechat_api import FakeWeChatAPI

runner = CliRunner()
SISONG = [sys.executable, "-m", "bot.cli"]


def cli_env(api: FakeWeChatAPI, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISONG_") or k.startswith("SISONG_TEST_")}
    env.update(
        {
            "SISONG_WECHAT_TOKEN": TOKEN,
            "SISONG_WECHAT_APPID": APPID,
            "SISONG_WECHAT_SECRET": SECRET,
            "SISONG_WECHAT_API_BASE": api.base_url,
            "SISONG_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "PYTHONPATH": str(Path(__file__).parents[1]),
        }
    )
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "args", [[], ["serve"], ["worker"], ["db"], ["db", "upgrade"], ["menu", "push"], ["chat"], ["qrcode"]]
)
def test_help_everywhere(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_malformed_setting_stops_the_command_with_one_line(tmp_path: Path, api: FakeWeChatAPI) -> None:
    env = cli_env(api, tmp_path, SISONG_WECHAT_AES_KEY="short")
    result = subprocess.run([*SISONG, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SISONG_WECHAT_AES_KEY" in lines[0]


def test_db_upgrade_on_sqlite_and_postgresql(tmp_path: Path, api: FakeWeChatAPI) -> None:
    result = subprocess.run([*SISONG, "db", "upgrade"], env=cli_env(api, tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "applied" in result.stderr or "up to date" in result.stderr
    assert (tmp_path / "cli.db").exists()

    if "server" not in BACKENDS:
        return
    reset_server_stores()
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # an empty schema, as on a new server
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    env = cli_env(api, tmp_path, SISONG_DATABASE_URL=PG_URL)
    result = subprocess.run([*SISONG, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "applied: 0001" in result.stderr
    again = subprocess.run([*SISONG, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert "up to date" in again.stderr


def test_menu_push_uploads_the_repo_menu(tmp_path: Path, api: FakeWeChatAPI) -> None:
    result = subprocess.run([*SISONG, "menu", "push"], env=cli_env(api, tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (call,) = api.calls_to("menu/create")
    names = [b["name"] for b in call.json["button"]]
    assert names == ["政策问答", "岗位信息", "我的帮扶"]
    keys = {s["key"] for b in call.json["button"] for s in b.get("sub_button", [b])}
    assert keys == {"POLICY_QA", "JOBS", "SURVEY", "CONTACT_HELPER"}


def test_menu_push_reports_wechat_refusal(tmp_path: Path, api: FakeWeChatAPI) -> None:
    api.inject("menu/create", {"errcode": 48001, "errmsg": "api unauthorized"})
    result = subprocess.run([*SISONG, "menu", "push"], env=cli_env(api, tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "48001" in result.stderr


def test_qrcode_prints_scene_and_image_url(tmp_path: Path, api: FakeWeChatAPI) -> None:
    result = subprocess.run([*SISONG, "qrcode", "village07"], env=cli_env(api, tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["scene"] == "village07" and "showqrcode" in out["image_url"]


def test_serve_refuses_several_workers_without_redis(tmp_path: Path, api: FakeWeChatAPI) -> None:
    result = subprocess.run([*SISONG, "serve", "--workers", "2"], env=cli_env(api, tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "SISONG_REDIS_URL" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_and_chat_end_to_end(tmp_path: Path, api: FakeWeChatAPI) -> None:
    """A fresh directory, one command to serve, and a follower chatting in the terminal."""
    port = free_port()
    env = cli_env(api, tmp_path, SISONG_PORT=str(port))
    server = subprocess.Popen([*SISONG, "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            server.kill()
            pytest.fail("server did not start:\n" + (server.stdout.read() if server.stdout else ""))
        chat = subprocess.run(
            [*SISONG, "chat"], env=env, input="/subscribe village07\n帮助\n/click JOBS\n/voice\n/quit\n",
            capture_output=True, text=True, timeout=60,
        )
        assert chat.returncode == 0, chat.stderr
        assert "欢迎关注四送助手" in chat.stdout
        assert "打字或发语音问政策" in chat.stdout
        assert "就业岗位" in chat.stdout
        assert "没听清" in chat.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_worker_delivers_queued_messages(tmp_path: Path, api: FakeWeChatAPI) -> None:
    """With Redis, `sisong serve` only enqueues; a separate `sisong worker` sends."""
    if "server" not in BACKENDS:
        pytest.skip("needs PostgreSQL and Redis")
    from bot.services import build_services
    from tests.conftest import REDIS_URL, wait_for

    reset_server_stores()
    env = cli_env(api, tmp_path, SISONG_DATABASE_URL=PG_URL, SISONG_REDIS_URL=REDIS_URL)
    settings_env = {k: v for k, v in env.items() if k.startswith("SISONG_")}
    os.environ.update(settings_env)
    try:
        from bot.config import load_settings

        services = build_services(load_settings(), migrate=False)
        services.queue.send_text("oWorker", "工人送出的消息")
        assert api.calls_to("message/custom/send") == []
    finally:
        for key in settings_env:
            os.environ.pop(key, None)
    worker = subprocess.Popen([*SISONG, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (call,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=30)
        assert call.json["text"]["content"] == "工人送出的消息"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        services.close()


def test_serve_with_an_unreachable_database_says_so(tmp_path: Path, api: FakeWeChatAPI) -> None:
    env = cli_env(api, tmp_path, SISONG_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    result = subprocess.run([*SISONG, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "无法连接数据库" in result.stderr and "Traceback" not in result.stderr


def test_wrong_secret_is_reported_without_a_traceback(tmp_path: Path, api: FakeWeChatAPI) -> None:
    env = cli_env(api, tmp_path, SISONG_WECHAT_SECRET="wrong-secret")
    result = subprocess.run([*SISONG, "menu", "push"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "40125" in result.stderr and "Traceback" not in result.stderr
