"""Conversation handlers. Each module registers itself on ``bot.router.router``.

Adding a handler: write a module, then add its name to the import below.
``STARTUP`` holds callables run once when the app starts (e.g. loading data);
``WARM_UP`` callables then load caches so the first messages are not slow.
"""

from collections.abc import Callable
from typing import Any

STARTUP: list[Callable[[Any], None]] = []
# Callables run once before traffic is accepted, to load caches a first message would pay for.
WARM_UP: list[Callable[[Any], None]] = []

from handlers import (  # noqa: E402,F401
    binding,
    events,
    fallback,
    handover,
    help,
    helper,
    jobs,
    media,
    menu,
    more,
    policy_qa,
    survey,
    too_fast,
    unsubscribe,
    voice,
    welcome,
)
