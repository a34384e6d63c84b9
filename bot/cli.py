"""The ``sisong`` command line: serve, worker, db, menu, qrcode, chat (and the knowledge commands)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from bot.config import ConfigError, Settings, load_settings
from bot.jobs_cli import register as register_jobs_commands
from bot.survey_cli import register as register_survey_commands
from bot.org_cli import register as register_org_commands
from bot.users_cli import register as register_users_commands
import bot.knowledge_host  # noqa: F401 - the knowledge commands' host
from knowledge.cli import register as register_knowledge_commands

MENU_FILE = Path(__file__).with_name("menu.json")

app = typer.Typer(
    help="四送助手 Sisong: 微信公众号服务 (WeChat official-account service).",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
menu_app = typer.Typer(help="The custom menu (bot/menu.json).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(menu_app, name="menu")

console = Console(stderr=True, soft_wrap=True)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def services_or_exit(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    """Build services; on SQLite this applies pending migrations (no setup step needed)."""
    from bot.services import build_services

    settings = settings or settings_or_exit()
    try:
        return build_services(settings)
    except Exception as exc:  # a database that does not answer, mostly
        console.print(f"[red]无法连接数据库 ({type(exc).__name__}): {exc}[/red]")
        raise typer.Exit(1) from None


@contextmanager
def multiprocess_metrics_dir(workers: int) -> Iterator[str | None]:
    """A PROMETHEUS_MULTIPROC_DIR for several workers, removed when serving ends.

    Every worker writes its counters there so ``/metrics`` adds them up; left
    behind, each restart would leave another folder in /tmp. A directory the
    operator set themselves is used as it is and never removed.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if workers <= 1 or given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="sisong-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield path
    finally:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == path:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(path, ignore_errors=True)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address (SISONG_HOST).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (SISONG_PORT).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (SISONG_WORKERS).")] = None,
) -> None:
    """Serve the webhook at /wechat (with /healthz and /metrics)."""
    import uvicorn

    from bot.logs import setup_logging

    settings = settings_or_exit(host=host, port=port, workers=workers)
    setup_logging(settings.log_level, settings.log_json)
    if settings.workers > 1 and not settings.uses_redis:
        console.print(
            "[red]--workers > 1 needs SISONG_REDIS_URL: without Redis each process would keep its own "
            "dedupe keys and token.[/red]"
        )
        raise typer.Exit(2)
    services = services_or_exit(settings)  # migrate once here, before workers start
    try:
        from bot.services import MigrationsPending, check_schema

        check_schema(services)
    except MigrationsPending as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except Exception as exc:
        console.print(f"[red]无法连接数据库 ({type(exc).__name__}): {exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.db.dispose()
    if settings.workers > 1:
        # Built once here, the word dictionary's cache is then mapped by every worker (~0.01 s
        # each instead of ~1 s and ~20 MB; SISONG_KB_DICTIONARY_CACHE).
        from knowledge.nlp.tokenizer import default_segmenter

        len(default_segmenter().dictionary)
    for key, value in settings.model_dump().items():  # the workers re-read settings from the env
        if value is not None and key in {"host", "port", "workers"}:
            os.environ[f"SISONG_{key.upper()}"] = str(value)
    if settings.is_dev_account:
        console.print(
            f"[yellow]开发模式: 未设置 SISONG_WECHAT_APPID，Token 为 {settings.wechat_token}，不会真正调用微信接口。[/yellow]"
        )
    console.print(f"四送助手 listening on http://{settings.host}:{settings.port}/wechat")
    with multiprocess_metrics_dir(settings.workers):
        uvicorn.run(
            "bot.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            timeout_worker_healthcheck=settings.worker_healthcheck,
            loop="uvloop",
            http="httptools",
            log_level=settings.log_level.lower(),
            access_log=False,
        )


@app.command()
def worker(
    workers: Annotated[int, typer.Option(help="Consumer threads.")] = 2,
    metrics_port: Annotated[
        Optional[int], typer.Option(help="Serve this worker's Prometheus metrics (outbound calls) on this port.")
    ] = None,
) -> None:
    """Run task-queue consumers and the sweeper (needed with Redis; `serve` runs both itself otherwise)."""
    from bot.logs import setup_logging

    settings = settings_or_exit()
    setup_logging(settings.log_level, settings.log_json)
    services = services_or_exit(settings)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=settings.host)
        console.print(f"metrics on http://{settings.host}:{metrics_port}/metrics")
    console.print(f"queue consumer: {type(services.queue.huey).__name__}, {workers} threads; sweeper every "
                  f"{settings.sweep_interval:g} s")
    sweeper = _sweeper(services)
    sweeper.start()
    try:
        services.queue.create_consumer(workers=workers).run()
    finally:
        sweeper.stop()


def _sweeper(services):  # type: ignore[no-untyped-def]
    """The worker sweeps too: dead web workers' messages get answered even if every web worker restarts."""
    import handlers  # noqa: F401  (registers every handler on the router)
    from bot.pipeline import Pipeline
    from bot.router import router
    from bot.sweeper import Sweeper

    return Sweeper(services, Pipeline(services, router))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending database migrations."""
    from storage.db import Database

    settings = settings_or_exit()
    database = Database(settings.database_url)
    try:
        with console.status("migrating…"):
            applied = database.upgrade()
    except Exception as exc:
        console.print(f"[red]migration failed ({type(exc).__name__}): {exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        database.dispose()
    console.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@menu_app.command("push")
def menu_push(
    file: Annotated[Path, typer.Option(help="Menu JSON file.")] = MENU_FILE,
) -> None:
    """Upload the custom menu to WeChat."""
    from bot.wechat_client import WeChatAPIError

    try:
        menu = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(2) from None
    services = services_or_exit()
    try:
        services.wechat.create_menu(menu)
    except WeChatAPIError as exc:
        console.print(f"[red]menu push failed: {exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.db.dispose()
    console.print(f"menu pushed: {len(menu.get('button', []))} buttons")


@app.command()
def qrcode(
    scene: Annotated[str, typer.Argument(help="Scene string, e.g. a village code.")],
    permanent: Annotated[bool, typer.Option(help="Permanent code instead of 30 days.")] = False,
) -> None:
    """Create a QR code whose scans arrive with this scene (e.g. one poster per village)."""
    from bot.wechat_client import WeChatAPIError

    services = services_or_exit()
    try:
        result = services.wechat.create_qrcode(scene, permanent=permanent)
    except WeChatAPIError as exc:
        console.print(f"[red]qrcode failed: {exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.db.dispose()
    typer.echo(json.dumps({"scene": scene, "url": result.get("url"), "image_url": result["image_url"]}))


@app.command()
def chat(
    url: Annotated[Optional[str], typer.Option(help="Webhook URL; default from SISONG_HOST/PORT.")] = None,
    openid: Annotated[str, typer.Option(help="The follower to play.")] = "oSisongChatUser0001",
    mode: Annotated[str, typer.Option(help="plain, compat or safe (safe needs SISONG_WECHAT_AES_KEY).")] = "",
) -> None:
    """Play a follower against a running service: type messages, see the replies."""
    from bot.chat import run_repl

    settings = settings_or_exit()
    target = url or f"http://{settings.host}:{settings.port}/wechat"
    run_repl(settings, target, openid, mode or ("safe" if settings.safe_mode else "plain"))


# Knowledge-base commands: handbook, ask, faq, unanswered, synonym.
register_knowledge_commands(app)
# Organisation and households: org import, households import/list/show/codes.
register_org_commands(app)
# Console accounts: users add/passwd/list/disable.
register_users_commands(app)
# 送岗位: jobs add/import/list/close/push/watch/signups/outcome/report.
register_jobs_commands(app)
register_survey_commands(app)


def main() -> None:
    """Every command: a bad setting or a database that does not answer is one clear line, never a traceback."""
    from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        sys.exit(2)
    except (DBAPIError, PoolTimeout) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        console.print(f"[red]数据库出错或无法连接（{type(exc).__name__}）：{reason}[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
