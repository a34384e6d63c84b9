"""The router: picks the one handler for a message.

Order, first match wins: a menu click's EventKey; an event type; for text,
a keyword that overrides conversation steps, the follower's conversation step
(or a durable step the database knows of: a survey under way), other
keywords, the free-text handler; the message type; the fallback. Handlers register themselves with the decorators below, so adding a
handler is one module plus one import line in ``handlers/__init__.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.context import Context

Handler = Callable[[Context], Any]


@dataclass
class _Keyword:
    pattern: re.Pattern[str]
    handler: Handler
    overrides_state: bool


@dataclass
class Router:
    clicks: dict[str, Handler] = field(default_factory=dict)
    events: dict[str, Handler] = field(default_factory=dict)
    states: dict[str, Handler] = field(default_factory=dict)
    # Conversation steps kept in the database (a survey): (probe, handler), asked when no step is in the
    # conversation (its TTL ran out, Redis lost it); a probe must be cheap and side-effect free.
    durable_steps: list[tuple[Callable[[Context], bool], Handler]] = field(default_factory=list)
    keywords: list[_Keyword] = field(default_factory=list)
    types: dict[str, Handler] = field(default_factory=dict)
    default_text: Handler | None = None
    fallback_handler: Handler | None = None
    too_fast_handler: Handler | None = None

    # -- registration -------------------------------------------------------

    def click(self, *keys: str) -> Callable[[Handler], Handler]:
        return self._register(self.clicks, keys)

    def event(self, *events: str) -> Callable[[Handler], Handler]:
        return self._register(self.events, tuple(e.lower() for e in events))

    def state(self, *states: str) -> Callable[[Handler], Handler]:
        return self._register(self.states, states)

    def durable_step(self, probe: Callable[[Context], bool]) -> Callable[[Handler], Handler]:
        """Route text to the handler while ``probe`` says the follower is in this (durable) step."""
        def register(handler: Handler) -> Handler:
            self.durable_steps.append((probe, handler))
            return handler

        return register

    def message(self, *types: str) -> Callable[[Handler], Handler]:
        return self._register(self.types, types)

    def keyword(
        self, *words: str, exact: bool = True, overrides_state: bool = False
    ) -> Callable[[Handler], Handler]:
        """Exact keywords match the whole (trimmed) text; others match anywhere in it.

        A conversation step (a survey question, say) sees the follower's words
        before keywords do, unless the keyword ``overrides_state`` (e.g. "0"
        for a person, which must always work).
        """
        alternatives = "|".join(re.escape(w) for w in words)
        pattern = re.compile(rf"^\s*(?:{alternatives})\s*[。.!！?？]*\s*$" if exact else alternatives)

        def register(handler: Handler) -> Handler:
            self.keywords.append(_Keyword(pattern, handler, overrides_state))
            return handler

        return register

    def pattern(self, regex: str, *, overrides_state: bool = False) -> Callable[[Handler], Handler]:
        """A keyword given as a regular expression (searched in the text), for commands with an
        argument such as "绑定 12345678" that a word list cannot describe."""
        compiled = re.compile(regex)

        def register(handler: Handler) -> Handler:
            self.keywords.append(_Keyword(compiled, handler, overrides_state))
            return handler

        return register

    def text(self, handler: Handler) -> Handler:
        """The handler for free text that no keyword or state claimed."""
        self.default_text = handler
        return handler

    def fallback(self, handler: Handler) -> Handler:
        self.fallback_handler = handler
        return handler

    def too_fast(self, handler: Handler) -> Handler:
        """The handler for a follower over ``SISONG_FOLLOWER_RATE``."""
        self.too_fast_handler = handler
        return handler

    @staticmethod
    def _register(table: dict[str, Handler], names: tuple[str, ...]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for name in names:
                if name in table:
                    raise ValueError(f"{name!r} already routed to {table[name].__module__}")
                table[name] = handler
            return handler

        return register

    # -- dispatch -----------------------------------------------------------

    def resolve(self, ctx: Context) -> Handler:
        if ctx.too_fast and self.too_fast_handler is not None:
            return self.too_fast_handler
        event = ctx.event
        if event:
            if event == "click" and ctx.event_key in self.clicks:
                return self.clicks[ctx.event_key]  # type: ignore[index]
            if event in self.events:
                return self.events[event]
        elif ctx.text is not None:
            state = ctx.conversation.state
            step = self.states.get(state) if state else None
            if step is None:
                step = next((handler for probe, handler in self.durable_steps if probe(ctx)), None)
            for keyword in self.keywords:
                if (keyword.overrides_state or step is None) and keyword.pattern.search(ctx.text):
                    return keyword.handler
            if step is not None:
                return step
            if self.default_text is not None:
                return self.default_text
        if ctx.msg_type in self.types:
            return self.types[ctx.msg_type]
        if self.fallback_handler is None:
            raise LookupError("no fallback handler registered")
        return self.fallback_handler


def handler_name(handler: Handler) -> str:
    module = handler.__module__.rsplit(".", 1)[-1]
    return f"{module}.{handler.__name__}"


router = Router()
