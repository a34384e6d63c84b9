"""What a handler receives: the message, the follower's session and the services."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session
from wechatpy.messages import BaseMessage

from storage.state import get_json, set_json

if TYPE_CHECKING:
    from bot.services import Services
    from bot.voice.service import VoiceResult


@dataclass
class Conversation:
    """Per-follower conversation state with a TTL (Redis or in-process).

    One dict per follower; handlers own their keys. ``state`` names the
    conversation step the router should send the next message to.
    """

    services: "Services"
    openid: str
    _data: dict[str, Any] | None = None
    _dirty: bool = False

    @property
    def key(self) -> str:
        return self.key_of(self.openid)

    @staticmethod
    def key_of(openid: str) -> str:
        return "session:" + openid

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = get_json(self.services.state, self.key) or {}
        return self._data

    @property
    def state(self) -> str | None:
        return self.data.get("state")

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def set(self, **values: Any) -> None:
        self.data.update(values)
        self._dirty = True

    def pop(self, name: str, default: Any = None) -> Any:
        if name in self.data:
            self._dirty = True
        return self.data.pop(name, default)

    def enter(self, state: str | None) -> None:
        self.set(state=state)

    def clear(self) -> None:
        self._data = {}
        self._dirty = True

    def save(self) -> None:
        if self._dirty:
            set_json(self.services.state, self.key, self.data, self.services.settings.session_ttl)
            self._dirty = False

    def preload(self, stored: str | None) -> None:
        """The state as read along with the message's Redis claim (``storage.redis_inbox``): no read of its own."""
        self._data = json.loads(stored) if stored else {}

    def take_changes(self) -> str | None:
        """The state as JSON if a handler changed it, for saving with the message's Redis settlement;
        after this, :meth:`save` has nothing left to do."""
        if not self._dirty:
            return None
        self._dirty = False
        return json.dumps(self.data, ensure_ascii=False)

    def keep_changes(self) -> None:
        """Undo :meth:`take_changes` (the settlement that was to save them failed): :meth:`save` will."""
        self._dirty = True


def event_of(message: BaseMessage) -> str | None:
    """The event name, lower-case; also for event types wechatpy does not know."""
    event = getattr(message, "event", None)
    if event:
        return str(event)
    if message._data.get("MsgType") == "event":
        return str(message._data.get("Event") or "unknown").lower()
    return None


@dataclass
class Context:
    message: BaseMessage
    openid: str
    services: "Services"
    conversation: Conversation
    text: str | None = None  # the words of a text message or a recognised voice message
    # The message's unit of work: committed with the message log once the handler returns.
    # Handlers write through it (not a second session): on SQLite a second writer
    # inside the same message would wait on the first one's lock.
    session: Session = field(default=None)  # type: ignore[assignment]
    # Over SISONG_FOLLOWER_RATE: the router sends the message to the too-fast handler.
    too_fast: bool = False
    # Effects that must happen only if the unit of work commits (notices, sends).
    effects: list[Callable[[], None]] = field(default_factory=list)
    # A voice message we transcribed ourselves (bot.voice): what was heard (then ``text`` holds it and the
    # reply starts with it) or why nothing was (the voice handler answers). None for everything else.
    voice: "VoiceResult | None" = None

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Run ``effect`` once this message's unit of work has committed, never before.

        A notice sent before the commit would announce something that a
        database error or a takeover by another worker then rolls back.
        """
        self.effects.append(effect)

    @property
    def msg_type(self) -> str:
        return str(self.message.type)

    @property
    def event(self) -> str | None:
        """The event name, lower-case; also for event types wechatpy does not know."""
        return event_of(self.message)

    @property
    def event_key(self) -> str | None:
        """EventKey as WeChat sent it (wechatpy strips "qrscene_" from subscribe scans)."""
        key = self.message._data.get("EventKey")
        return str(key) if isinstance(key, (str, int)) and str(key) else None
