"""A fake WeChat API (``api.weixin.qq.com/cgi-bin/``) on loopback that records calls.

Why a real HTTP server instead of mocking ``requests``: Sisong calls the API
through wechatpy (requests), the task-queue worker may run in another process,
and the WeCom robot is called with httpx. A socket on 127.0.0.1 serves all of
them unchanged; only ``SISONG_WECHAT_API_BASE`` has to point here.

What is modelled, because Sisong's behaviour depends on it:

* access_token issuing (``token``, ``stable_token``) and rejection of unknown
  or invalidated tokens with 40001 - to test refresh-and-retry;
* one-shot injected answers (45009, -1, 45015, ...), dropped connections and
  per-endpoint latency (the request is recorded first, so a client that times
  out has still "reached WeChat") - to test back-off, deadlines and
  may-have-been-delivered failures;
* just enough state for tags, menus and QR codes to round-trip: tag members
  are kept (``tag_members``), and a tagging call with more than 50 openids is
  refused with 40032, as WeChat does;
* several WeCom group robots (``robot_url(key)``), each answering like the
  default one (``wecom_url``), unknown keys with 93000;
* pushes: template sends answer a ``msgid`` and are deduped on
  ``(touser, client_msg_id)`` for 10 minutes as WeChat documents (a repeat
  gets the first msgid and is not delivered again); answers can be injected
  for one follower (``inject_for``); ``deliveries()`` counts what each
  follower actually received; ``keep_alive=True`` speaks HTTP/1.1 keep-alive
  like WeChat's servers (the bench: 20,000 sends without a connection each);
  ``GET /__fake__/deliveries`` serves the counts to a fake in another process.

* temporary media (``media/get``): clips a test adds with ``add_media`` are
  served as binary (``audio/amr`` for voice), as WeChat does; an unknown or
  expired (``expire_media``) media id answers 40007 "invalid media_id".

Everything else answers ``{"errcode": 0, "errmsg": "ok"}`` and is recorded.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/cgi-bin/"
OK = {"errcode": 0, "errmsg": "ok"}
INVALID_TOKEN = {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
# Inject this to close the connection after the request was read, without answering.
DROP = {"__fake__": "drop the connection"}


def http_error(status: int) -> dict:
    """Inject this for a non-JSON HTTP error answer, as a gateway in front of WeChat gives (502, 503, ...)."""
    return {"__fake_status__": status}

_UNPARSED = object()


def _endpoint_of(path: str) -> str:
    """``/cgi-bin/message/custom/send`` -> ``message/custom/send``."""
    return (path[len(PREFIX) :] if path.startswith(PREFIX) else path).strip("/")


@dataclass
class Call:
    """One request the fake received. ``json`` is the decoded body (None if empty,
    the raw text if it was not JSON)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    at: float

    @property
    def endpoint(self) -> str:
        """Path after ``/cgi-bin/`` (``message/custom/send``)."""
        return _endpoint_of(self.path)


class FakeWeChatAPI:
    """Loopback stand-in for the WeChat API and the WeCom group robot."""

    def __init__(self, appid: str = "wxtestappid", secret: str = "test-secret", robot_key: str = "test-robot",
                 keep_alive: bool = False, record_calls: bool = True) -> None:
        self.keep_alive = keep_alive
        self.record_calls = record_calls  # the bench turns it off: 20,000 Call objects are not needed
        self._delivered: dict[str, int] = defaultdict(int)  # touser -> messages received (custom + template)
        self._client_ids: dict[tuple[str, str], tuple[float, int]] = {}  # (touser, client_msg_id) -> (at, msgid)
        self._injected_for: dict[tuple[str, str], deque[dict]] = defaultdict(deque)
        self.appid = appid
        self.secret = secret
        self.robot_key = robot_key
        self._robot_keys: set[str] = set()  # more group robots (``robot_url``), until ``reset``
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._injected: dict[str, deque[dict]] = defaultdict(deque)
        self._latency: dict[str, tuple[float, int | None]] = {}
        self._token_seq = itertools.count(1)
        self._id_seq = itertools.count(1)
        self._valid_tokens: set[str] = set()
        self._stable_token: str | None = None
        self._tags: dict[int, dict[str, Any]] = {}
        self._tag_members: dict[int, set[str]] = defaultdict(set)
        self._menu: dict | None = None
        self._media: dict[str, tuple[bytes, str]] = {}  # media_id -> (content, content type)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeWeChatAPI":
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        if self._server is not None:
            return self
        fake = self

        class Handler(_Handler):
            api = fake
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"
            # Headers and body are two writes: without TCP_NODELAY a kept-alive connection waits
            # for the client's delayed ACK (40 ms) on every answer.
            disable_nagle_algorithm = fake.keep_alive

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # A short poll interval keeps stop() (and so every fixture teardown) fast.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-wechat-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "FakeWeChatAPI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeWeChatAPI is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What ``SISONG_WECHAT_API_BASE`` is set to."""
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    @property
    def wecom_url(self) -> str:
        """WeCom group-robot webhook URL."""
        return f"http://127.0.0.1:{self.port}{PREFIX}webhook/send?key={self.robot_key}"

    def robot_url(self, key: str) -> str:
        """The URL of another group robot (one WeCom group each); calls to it are recorded the same way."""
        with self._lock:
            self._robot_keys.add(key)
        return f"http://127.0.0.1:{self.port}{PREFIX}webhook/send?key={key}"

    # ------------------------------------------------------------------ test controls

    def calls_to(self, endpoint: str) -> list[Call]:
        """Recorded calls to ``endpoint`` (path after /cgi-bin/), oldest first."""
        endpoint = endpoint.strip("/")
        with self._lock:
            return [c for c in self.calls if c.endpoint == endpoint]

    def inject(self, endpoint: str, *responses: dict) -> None:
        """Queue one-shot answers for the next calls to ``endpoint``.

        Injected answers win over everything, token checks included, so a test
        can make even a valid call fail (e.g. 45009, -1 busy).
        """
        with self._lock:
            self._injected[endpoint.strip("/")].extend(responses)

    def inject_for(self, endpoint: str, openid: str, *responses: dict) -> None:
        """Like ``inject``, but only for calls whose body's ``touser`` is ``openid`` (concurrent senders)."""
        with self._lock:
            self._injected_for[(endpoint.strip("/"), openid)].extend(responses)

    def deliveries(self) -> dict[str, int]:
        """Messages each follower received (custom + template; a deduped template repeat not counted)."""
        with self._lock:
            return dict(self._delivered)

    def set_latency(self, endpoint: str, seconds: float, times: int | None = None) -> None:
        """Delay answers to ``endpoint`` (after recording, before answering); only the next ``times`` if given."""
        with self._lock:
            self._latency[endpoint.strip("/")] = (seconds, times)

    def invalidate_tokens(self) -> None:
        """Every token issued so far answers 40001 from now on (tokens issued later work)."""
        with self._lock:
            self._valid_tokens.clear()
            self._stable_token = None

    def reset(self) -> None:
        """Forget calls, injections, latencies, extra robots and media; tokens, tags and menu stay."""
        with self._lock:
            self.calls.clear()
            self._media.clear()
            self._injected.clear()
            self._latency.clear()
            self._robot_keys.clear()
            self._delivered.clear()
            self._client_ids.clear()
            self._injected_for.clear()

    def tag_members(self, tag_id: int) -> set[str]:
        """Openids currently carrying ``tag_id`` (after batchtagging / batchuntagging)."""
        with self._lock:
            return set(self._tag_members.get(tag_id, ()))

    @property
    def tokens(self) -> set[str]:
        """Tokens currently accepted."""
        with self._lock:
            return set(self._valid_tokens)

    def add_media(self, media_id: str, content: bytes, content_type: str = "audio/amr") -> None:
        """Serve ``content`` for ``media/get?media_id=...`` (a follower's voice clip, say)."""
        with self._lock:
            self._media[media_id] = (content, content_type)

    def expire_media(self, media_id: str) -> None:
        """WeChat keeps temporary media 3 days: after that ``media/get`` answers 40007."""
        with self._lock:
            self._media.pop(media_id, None)

    def media_answer(self, query: dict[str, str]) -> tuple[bytes, str] | dict:
        """``media/get``: the clip, or WeChat's JSON error (bad token, unknown or expired media id)."""
        with self._lock:
            token_ok = query.get("access_token") in self._valid_tokens
            media = self._media.get(query.get("media_id", ""))
        if not token_ok:
            return dict(INVALID_TOKEN)
        if media is None:
            return {"errcode": 40007, "errmsg": "invalid media_id hint: [fake]"}
        return media

    # ------------------------------------------------------------------ request handling

    def _record(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[float, dict | None]:
        endpoint = _endpoint_of(path)
        with self._lock:
            if self.record_calls:
                self.calls.append(Call(method=method, path=path, query=query, json=body, at=time.time()))
            touser = body.get("touser") if isinstance(body, dict) else None
            own = self._injected_for.get((endpoint, touser)) if touser else None
            if own:
                latency, times = self._latency.get(endpoint, (0.0, None))
                return latency, own.popleft()
            latency, times = self._latency.get(endpoint, (0.0, None))
            if times is not None:
                if times <= 1:
                    self._latency.pop(endpoint, None)
                else:
                    self._latency[endpoint] = (latency, times - 1)
            queue = self._injected.get(endpoint)
            injected = queue.popleft() if queue else None
        return latency, injected

    def _issue_token(self) -> str:
        with self._lock:
            token = f"TOKEN-{next(self._token_seq)}"
            self._valid_tokens.add(token)
        return token

    def _check_app(self, appid: str | None, secret: str | None, grant_type: str | None) -> dict | None:
        if grant_type != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if appid != self.appid:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if secret != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        return None

    def answer(self, method: str, endpoint: str, query: dict[str, str], body: Any) -> dict:
        """Default behaviour of one endpoint (no injection)."""
        if endpoint == "token":
            error = self._check_app(query.get("appid"), query.get("secret"), query.get("grant_type"))
            return error or {"access_token": self._issue_token(), "expires_in": 7200}
        if endpoint == "stable_token":
            data = body if isinstance(body, dict) else {}
            error = self._check_app(data.get("appid"), data.get("secret"), data.get("grant_type"))
            if error:
                return error
            with self._lock:
                current = self._stable_token if self._stable_token in self._valid_tokens else None
            if current is None or data.get("force_refresh"):
                current = self._issue_token()
                with self._lock:
                    self._stable_token = current
            return {"access_token": current, "expires_in": 7200}
        if endpoint == "webhook/send":
            with self._lock:
                known = query.get("key") == self.robot_key or query.get("key") in self._robot_keys
            if not known:
                return {"errcode": 93000, "errmsg": "invalid webhook url"}
            return dict(OK)

        with self._lock:
            token_ok = query.get("access_token") in self._valid_tokens
        if not token_ok:
            return dict(INVALID_TOKEN)
        if body is _UNPARSED:
            return {"errcode": 47001, "errmsg": "data format error"}
        data = body if isinstance(body, dict) else {}
        return self._endpoint(endpoint, query, data)

    def _endpoint(self, endpoint: str, query: dict[str, str], data: dict) -> dict:
        if endpoint == "message/template/send":
            touser, client_id = str(data.get("touser") or ""), data.get("client_msg_id")
            with self._lock:
                if client_id:
                    seen = self._client_ids.get((touser, str(client_id)))
                    if seen is not None and time.time() - seen[0] < 600:
                        return {**OK, "msgid": seen[1]}  # WeChat's dedupe: not delivered twice
                msgid = next(self._id_seq)
                if client_id:
                    self._client_ids[(touser, str(client_id))] = (time.time(), msgid)
                self._delivered[touser] += 1
            return {**OK, "msgid": msgid}
        if endpoint == "message/custom/send":
            with self._lock:
                self._delivered[str(data.get("touser") or "")] += 1
            return dict(OK)
        if endpoint in ("message/mass/sendall", "message/mass/send"):
            msg_id = self._next_id()
            return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id, "msg_data_id": msg_id}
        if endpoint == "tags/create":
            name = (data.get("tag") or {}).get("name", "")
            tag = {"id": 100 + self._next_id(), "name": name}
            with self._lock:
                self._tags[tag["id"]] = {**tag, "count": 0}
            return {"tag": tag}
        if endpoint == "tags/get":
            with self._lock:
                tags = [{"id": 2, "name": "星标组", "count": 0}, *(dict(t) for t in self._tags.values())]
            return {"tags": tags}
        if endpoint in ("tags/members/batchtagging", "tags/members/batchuntagging"):
            openids = data.get("openid_list") or []
            if not isinstance(openids, list) or not 1 <= len(openids) <= 50:
                return {"errcode": 40032, "errmsg": "invalid openid list size"}
            tag_id = int(data.get("tagid") or 0)
            with self._lock:
                members = self._tag_members[tag_id]
                if endpoint.endswith("batchtagging"):
                    members.update(openids)
                else:
                    members.difference_update(openids)
                if tag_id in self._tags:
                    self._tags[tag_id]["count"] = len(members)
            return dict(OK)
        if endpoint == "qrcode/create":
            n = self._next_id()
            answer: dict[str, Any] = {"ticket": f"gQFakeTicket{n:08d}", "url": f"http://weixin.qq.com/q/fake{n:08d}"}
            if not str(data.get("action_name", "")).startswith("QR_LIMIT"):
                answer["expire_seconds"] = int(data.get("expire_seconds") or 60)
            return answer
        if endpoint == "menu/create":
            with self._lock:
                self._menu = data
            return dict(OK)
        if endpoint == "menu/get":
            with self._lock:
                menu = self._menu
            return {"menu": menu} if menu is not None else {"errcode": 46003, "errmsg": "menu no exist"}
        if endpoint == "menu/delete":
            with self._lock:
                self._menu = None
            return dict(OK)
        if endpoint == "user/info":
            return {
                "subscribe": 1,
                "openid": query.get("openid", ""),
                "language": "zh_CN",
                "subscribe_time": int(time.time()),
                "remark": "",
                "groupid": 0,
                "tagid_list": [],
                "subscribe_scene": "ADD_SCENE_QR_CODE",
                "qr_scene": 0,
                "qr_scene_str": "",
            }
        # message/custom/send and anything unknown.
        return dict(OK)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._id_seq)


class _QuietServer(ThreadingHTTPServer):
    """A client that went away (a sender killed mid-call, a timeout) is not a fake-server error.

    A listen backlog like a real server's: socketserver's default of 5 drops the SYNs of a restarted
    sender's 32 threads connecting at once, which then time out (ConnectTimeout) as WeChat would not make
    them.
    """

    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    api: FakeWeChatAPI  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        parse_failed = False
        if raw:
            text = raw.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                body, parse_failed = text, True

        if url.path == "/__fake__/deliveries":
            self._send(200, self.api.deliveries())
            return
        latency, injected = self.api._record(method, url.path, query, body)
        if latency:
            time.sleep(latency)
        if not url.path.startswith(PREFIX):
            self._send(404, {"errcode": 404, "errmsg": "not found"})
            return
        endpoint = _endpoint_of(url.path)
        if injected == DROP:
            self.close_connection = True
            return
        if injected is not None and "__fake_status__" in injected:
            self._send(int(injected["__fake_status__"]), {"error": "bad gateway"})
            return
        if injected is None and method == "GET" and endpoint == "media/get":
            media = self.api.media_answer(query)
            if isinstance(media, tuple):
                self._send_bytes(*media)
                return
            self._send(200, media)
            return
        if injected is not None:
            answer = injected
        else:
            answer = self.api.answer(method, endpoint, query, _UNPARSED if parse_failed else body)
        self._send(200, answer)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout was shorter than our latency)

    def _send_bytes(self, content: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Disposition", 'attachment; filename="media.amr"')
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        try:
            self.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            pass
