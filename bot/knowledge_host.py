"""Sisong as the host of the knowledge commands (``knowledge.cli.Host``): knowledge/ never imports bot/.

Installed on import; ``bot/app.py`` and ``bot/cli.py`` import it, so every
process that serves or runs ``sisong`` has it. The bot modules are imported
when a command needs them, not here (they import the knowledge base).
"""

from __future__ import annotations

from typing import Any

from knowledge.cli import Host, set_host


def _settings() -> Any:
    from bot.config import get_settings

    return get_settings()


def _services() -> Any:
    from bot.services import build_services

    return build_services()


def _notify_followers(openids: list[str], text: str) -> None:
    from bot.services import notify_followers

    notify_followers(openids, text)


def _reply_sender(services: Any) -> Any:
    from bot.private_replies import sender

    return sender(services)


def _config_error() -> type[Exception]:
    from bot.config import ConfigError

    return ConfigError


set_host(Host(settings=_settings, services=_services, notify_followers=_notify_followers,
              reply_sender=_reply_sender, config_error=_config_error()))
