"""What the cadres' command groups share (``jobs_cli``, ``survey_cli``): Chinese output that is never read
as markup, JSON for scripts, one red line and an exit code on a refusal, and the settings, database and
services of the command."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True, emoji=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

AsJson = Annotated[bool, typer.Option("--json", help="输出 JSON（给脚本用）")]


def say(text: str, style: str | None = None, *, err: bool = False) -> None:
    """Text that may hold names from a file or a cadre: never read as rich markup."""
    (errors if err else console).print(text, style=style, markup=False)


def emit(payload: object) -> None:
    print(json.dumps(payload, ensure_ascii=False))


def fail(message: str, code: int = 1) -> None:
    say(message, "red", err=True)
    raise typer.Exit(code)


def settings() -> Any:
    from bot.config import get_settings

    return get_settings()


def database() -> Any:
    from knowledge.cli import get_db

    return get_db()


def services() -> Any:
    from bot.cli import services_or_exit, settings_or_exit

    return services_or_exit(settings_or_exit())


def township_id(session: Any) -> int:
    from storage.households import ensure_township

    return ensure_township(session, settings().township).id
