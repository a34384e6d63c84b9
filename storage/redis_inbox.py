"""The inbox's fast path in Redis: claims, replies for retries, and the write-behind message log.

Why: a database commit costs a disk flush (4–7 ms on this project's machine, 1–2 ms on good SSDs), and
the database inbox (:mod:`storage.inbox`) committed twice per message, the claim and the settlement.
Most messages (a policy question, "帮助", a menu word) write nothing but their log row and the
follower's last-seen time, so with Redis configured they take this path instead:

1. **Claim** in one script: the replay guard's body hash, then the message's hash
   ``in:{dedupe key}`` (owner, lease, attempts, the clear payload) and its place in the
   ``in:pending`` sorted set (score: lease end). A retry while the first attempt lives sees
   ``received``; once its lease ran out the retry takes it over (attempts + 1), exactly as the
   database claim does. Times are Redis's own clock (``TIME``), so workers' clocks do not matter.
2. **Settle** in one script, only if the claim is still ours: status and the clear reply (for
   WeChat's retries), out of ``in:pending``, and the log record appended to ``in:log`` — the
   write-behind buffer that :class:`bot.flusher.LogFlusher` drains into ``message_log`` and
   ``followers`` in batches (one commit per batch instead of two per message).
3. A handler that wrote to the database (a binding, a survey answer, a question queued for a
   person), a late answer and a failure do not use the buffer: their row is inserted in the
   handler's own transaction (:func:`storage.inbox.insert_settled`), whose unique key makes a
   second commit of the same message impossible; :meth:`RedisInbox.finish` then records the
   outcome here for retries.

Nothing is lost when a process dies: a claim that is never settled stays in ``in:pending`` and the
sweeper hands it to the database inbox (:meth:`RedisInbox.take_abandoned`); records a flusher took
but did not commit sit in its own ``in:flushing:{id}`` list and go back to the buffer when its
heartbeat stops (:meth:`RedisInbox.requeue_dead_flushers`); records are inserted with
``ON CONFLICT DO NOTHING``, so a batch flushed twice is harmless. Redis must keep its data across
restarts in production (``appendonly yes``) for the buffer to survive a Redis restart; while Redis
is down the database inbox is used as before.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import redis

PREFIX = "sisong:"
PENDING = PREFIX + "in:pending"
LOG = PREFIX + "in:log"
DEAD = PREFIX + "in:dead"
DEAD_KEPT = 10_000
DEAD_TTL = 30 * 24 * 3600
FLUSHERS = PREFIX + "in:flushers"
# A claim's hash lives this long while unsettled (the sweeper needs its payload), then as long as
# WeChat may retry (its last retry comes ~15 s after the first delivery; the replay window is longer).
OPEN_TTL = 24 * 3600

# KEYS: hash, pending, replay key, rate key, session key (unused ones repeat the hash).
# ARGV: owner, -, lease ms, hash ttl, payload, body digest ('' = no replay check), replay ttl, member,
#       rate amount (0 = not limited), rate window seconds.
# For an attempt that owns the message, the follower's rate-limit hit (the `limits` library's moving
# window, same key and layout, so both count the same hits) and conversation state ride along.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[6] ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first and first ~= ARGV[6] then return {'replayed', ''} end
  if not first then redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[7]) end
end
local cur = redis.call('HMGET', KEYS[1], 'status', 'lease', 'attempts', 'reply')
local lease_end = now + tonumber(ARGV[3])
local attempts
if not cur[1] then
  attempts = 1
  redis.call('HSET', KEYS[1], 'status', 'received', 'owner', ARGV[1], 'lease', lease_end, 'attempts', 1,
             'payload', ARGV[5], 'created', now)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
elseif cur[1] == 'received' and tonumber(cur[2]) < now then
  attempts = tonumber(cur[3]) + 1
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease', lease_end, 'attempts', attempts)
else
  return {cur[1], cur[4] or ''}
end
redis.call('ZADD', KEYS[2], lease_end, ARGV[8])
local too_fast = '0'
local amount = tonumber(ARGV[9])
if amount > 0 then
  local seconds = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local window = tonumber(ARGV[10])
  local oldest = redis.call('LINDEX', KEYS[4], amount - 1)
  if oldest and tonumber(oldest) >= seconds - window then
    too_fast = '1'
  else
    redis.call('LPUSH', KEYS[4], string.format('%.6f', seconds))
    redis.call('LTRIM', KEYS[4], 0, amount - 1)
    redis.call('EXPIRE', KEYS[4], window)
  end
end
local conversation = false
if KEYS[5] ~= KEYS[1] then conversation = redis.call('GET', KEYS[5]) end
return {'mine', tostring(attempts), too_fast, conversation}
"""

# KEYS: hash, pending, log, session key. ARGV: owner, status, reply, record ('' = none), member, ttl,
# conversation state ('' = unchanged), its ttl.
_SETTLE = """
local cur = redis.call('HMGET', KEYS[1], 'status', 'owner')
if cur[1] ~= 'received' or cur[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'reply', ARGV[3])
redis.call('HDEL', KEYS[1], 'payload')
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[5])
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[4]) end
if ARGV[7] ~= '' then redis.call('SET', KEYS[4], ARGV[7], 'EX', ARGV[8]) end
return 1
"""

# KEYS: hash, pending. ARGV: member, grace ms, new owner, lease ms. Step one of handing an abandoned
# claim to the database inbox: the sweeper takes it over like a retry would (owner, lease, attempts
# + 1), keeping status and payload, so a sweeper that dies or cannot reach the database loses nothing.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'status', 'lease', 'payload', 'attempts')
if not cur[1] or cur[1] ~= 'received' then redis.call('ZREM', KEYS[2], ARGV[1]); return false end
if tonumber(cur[2]) + tonumber(ARGV[2]) > now then return false end
local attempts = tonumber(cur[4] or '1') + 1
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'lease', now + tonumber(ARGV[4]), 'attempts', attempts)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return {cur[3] or '', tostring(attempts)}
"""

# KEYS: hash, pending. ARGV: owner, member. Step two, once the database inbox holds the message (or an
# attempt found its row there): retries follow the database from now on.
_MOVED = """
local cur = redis.call('HMGET', KEYS[1], 'status', 'owner')
if cur[1] ~= 'received' or cur[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'moved')
redis.call('HDEL', KEYS[1], 'payload')
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: hash. ARGV: status. A settled message's status for retries, if the hash still exists.
_MARK = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'status', ARGV[1]); return 1 end
return 0
"""

# KEYS: log, this flusher's list. ARGV: count.
_TAKE_BATCH = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""

# KEYS: flushers, log. ARGV: prefix of flushing lists, now ms, flusher id (or ''). The lists of the
# flushers whose heartbeat stopped before now — or of the one named, stopping: what it could not write
# (the database down at SIGTERM) — go back to the front of the buffer, and those flushers are forgotten.
_PUT_BACK = """
local ids
if ARGV[3] ~= '' then ids = {ARGV[3]} else ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2]) end
local moved = 0
for _, id in ipairs(ids) do
  local list = ARGV[1] .. id
  local items = redis.call('LRANGE', list, 0, -1)
  for i = #items, 1, -1 do redis.call('LPUSH', KEYS[2], items[i]) end
  moved = moved + #items
  redis.call('DEL', list)
  redis.call('ZREM', KEYS[1], id)
end
return moved
"""

_NOW = "local t = redis.call('TIME'); return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"


@dataclass(frozen=True)
class Claim:
    """What the claim script said: ``mine`` (answer it; ``attempts`` so far, whether the follower is
    ``too_fast``, their ``conversation`` state as stored), ``received`` (another attempt is answering),
    a settled status with its clear ``reply``, or ``replayed``."""

    status: str
    reply: str = ""
    attempts: int = 0
    too_fast: bool = False
    conversation: str | None = None

    @property
    def mine(self) -> bool:
        return self.status == "mine"


@dataclass(frozen=True)
class Abandoned:
    key: str
    payload: str
    attempts: int


class RedisInbox:
    """The Redis side of the inbox for one process (scripts registered once, one client)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)
        self._take = client.register_script(_TAKE)
        self._moved = client.register_script(_MOVED)
        self._mark = client.register_script(_MARK)
        self._take_batch = client.register_script(_TAKE_BATCH)
        self._put_back = client.register_script(_PUT_BACK)
        self._now = client.register_script(_NOW)

    @staticmethod
    def _hash(key: str) -> str:
        return f"{PREFIX}in:{key}"

    # -- the message path ------------------------------------------------------------------

    def claim(self, key: str, owner: str, lease: float, payload: str, *, replay_key: str | None = None,
              digest: str = "", replay_ttl: int = 600, rate: tuple[str, int, int] | None = None,
              conversation_key: str | None = None) -> Claim:
        """Claim ``key`` for ``owner`` in one round trip. With ``replay_key`` the replay guard's check
        rides along; with ``rate`` (key, amount, window seconds) the follower's rate-limit hit; with
        ``conversation_key`` their conversation state is read."""
        hashed = self._hash(key)
        rate_key, amount, window = rate if rate else (None, 0, 0)
        reply = self._claim(
            keys=[hashed, PENDING, PREFIX + replay_key if replay_key else hashed, rate_key or hashed,
                  PREFIX + conversation_key if conversation_key else hashed],
            args=[owner, 0, int(lease * 1000), OPEN_TTL, payload, digest if replay_key else "", replay_ttl, key,
                  amount, window],
        )
        status, value = _text(reply[0]), _text(reply[1])
        if status == "mine":
            stored = reply[3] if len(reply) > 3 and conversation_key else None
            return Claim("mine", attempts=int(value), too_fast=_text(reply[2]) == "1",
                         conversation=_text(stored) if stored else None)
        return Claim(status, reply=value)

    def look(self, key: str) -> Claim | None:
        status, reply = self.client.hmget(self._hash(key), ["status", "reply"])
        if status is None:
            return None
        return Claim(_text(status), reply=_text(reply or ""))

    def settle(self, key: str, owner: str, status: str, reply: str | None, record: dict[str, Any] | None,
               reply_ttl: int, conversation: tuple[str, str, int] | None = None) -> bool:
        """Record the outcome if the claim is still ``owner``'s; ``record`` goes to the write-behind log,
        ``conversation`` (key, state as JSON, ttl) is saved with it. False when another attempt took the
        message over (our work must not count, and the state is not saved)."""
        conv_key, conv_value, conv_ttl = conversation if conversation else (None, "", 0)
        done = self._settle(
            keys=[self._hash(key), PENDING, LOG, PREFIX + conv_key if conv_key else self._hash(key)],
            args=[owner, status, reply or "", json.dumps(record, ensure_ascii=False) if record else "", key,
                  reply_ttl, conv_value, conv_ttl],
        )
        return bool(done)

    def mark(self, key: str, status: str) -> None:
        """Change a settled message's status for retries (an answer that became owed)."""
        self._mark(keys=[self._hash(key)], args=[status])

    def moved(self, key: str, owner: str) -> bool:
        """Hand ``owner``'s claim to the database inbox: retries follow the database row from now on."""
        return bool(self._moved(keys=[self._hash(key), PENDING], args=[owner, key]))

    # -- the sweeper -------------------------------------------------------------------------

    def abandoned(self, grace: float, limit: int = 50) -> list[str]:
        """Keys whose claim lease ran out ``grace`` seconds ago (their worker died mid-answer)."""
        now = int(self._now())
        members = self.client.zrangebyscore(PENDING, "-inf", now - int(grace * 1000), start=0, num=limit)
        return [_text(m) for m in members]

    def take_abandoned(self, key: str, grace: float, owner: str, lease: float) -> Abandoned | None:
        """Take one abandoned claim over for ``owner`` (step one of moving it to the database inbox;
        :meth:`moved` is step two); None if it settled or someone else took it."""
        taken = self._take(keys=[self._hash(key), PENDING], args=[key, int(grace * 1000), owner, int(lease * 1000)])
        if not taken:
            return None
        payload, attempts = (_text(v) for v in taken)
        return Abandoned(key, payload, int(attempts or 2))

    # -- the write-behind log ------------------------------------------------------------------

    def take_batch(self, flusher: str, count: int, heartbeat: float) -> list[dict[str, Any]]:
        """Move up to ``count`` records to this flusher's own list (kept there until :meth:`done`)."""
        now = int(self._now())
        self.client.zadd(FLUSHERS, {flusher: now + int(heartbeat * 1000)})
        raw = self._take_batch(keys=[LOG, self.flushing(flusher)], args=[count])
        records = []
        for item in raw:
            try:
                records.append(json.loads(item))
            except ValueError:
                self.bury(_text(item))
        return records

    def pending_in_flight(self, flusher: str) -> list[dict[str, Any]]:
        """Records this flusher took but has not confirmed (after a failed commit, say); an unreadable
        one was put aside when it was taken."""
        records = []
        for item in self.client.lrange(self.flushing(flusher), 0, -1):
            try:
                records.append(json.loads(item))
            except ValueError:
                continue
        return records

    def done(self, flusher: str) -> None:
        self.client.delete(self.flushing(flusher))

    def bury(self, record: dict[str, Any] | str) -> None:
        """A record the database refuses for good (not an outage): kept aside for a person, not retried
        (the newest ``DEAD_KEPT``; they hold openids and masked words, so not for ever)."""
        item = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)
        pipe = self.client.pipeline()
        pipe.rpush(DEAD, item)
        pipe.ltrim(DEAD, -DEAD_KEPT, -1)
        pipe.expire(DEAD, DEAD_TTL)
        pipe.execute()

    def heartbeat(self, flusher: str, seconds: float) -> None:
        self.client.zadd(FLUSHERS, {flusher: int(self._now()) + int(seconds * 1000)})

    def retire(self, flusher: str) -> int:
        """A flusher stopping: what it took and could not write goes back to the front of the buffer,
        then its heartbeat goes. Returns how many records went back."""
        return int(self._put_back(keys=[FLUSHERS, LOG], args=[self.flushing(""), 0, flusher]))

    def requeue_dead_flushers(self) -> int:
        """Records of flushers whose heartbeat stopped go back to the buffer; returns how many."""
        return int(self._put_back(keys=[FLUSHERS, LOG], args=[self.flushing(""), int(self._now()), ""]))

    def backlog(self) -> int:
        return int(self.client.llen(LOG))

    def in_flight(self) -> int:
        """Records taken by flushers and not yet committed, over all flushers."""
        return sum(int(self.client.llen(self.flushing(_text(f)))) for f in self.client.zrange(FLUSHERS, 0, -1))

    @staticmethod
    def flushing(flusher: str) -> str:
        return f"{PREFIX}in:flushing:{flusher}"

    @staticmethod
    def new_flusher_id() -> str:
        return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)
