"""A fake Tencent Cloud ASR endpoint (``asr.tencentcloudapi.com``) on loopback.

Sisong's cloud engine talks to it through Tencent's own SDK unchanged; only
``SISONG_ASR_ENDPOINT`` points here. What is modelled, because Sisong's
behaviour depends on it:

* the TC3-HMAC-SHA256 signature is checked as Tencent documents it (a wrong
  SecretKey answers ``AuthFailure.SignatureFailure``, an unknown SecretId
  ``AuthFailure.SecretIdNotFound``), so the test proves the SDK is configured
  with the keys from settings;
* ``SentenceRecognition`` reads the base64 audio in ``Data`` (checked against
  ``DataLen``) and answers ``Result`` from ``transcriber(pcm_bytes, params)``
  (the test's stand-in for the recogniser), with ``AudioDuration`` from the
  PCM length;
* one-shot errors (``fail_next``) and latency (``latency``) for the failure paths.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class AsrCall:
    action: str
    params: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(secret_key: str, *, method: str, host: str, content_type: str, body: bytes, timestamp: str,
                  date: str, service: str) -> str:
    """The signature Tencent Cloud expects (API 3.0, TC3-HMAC-SHA256), written from its documentation."""
    canonical = "\n".join([
        method, "/", "", f"content-type:{content_type}\nhost:{host}\n", "content-type;host",
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class FakeTencentAsr:
    def __init__(self, secret_id: str = "AKIDfakesisong0000", secret_key: str = "fake-secret-key") -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.calls: list[AsrCall] = []
        self.transcriber: Callable[[bytes, dict[str, Any]], str] = lambda pcm, params: ""
        self.latency = 0.0
        self._errors: deque[tuple[str, str]] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "FakeTencentAsr":
        fake = self

        class Handler(_Handler):
            asr = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True,
                         name="fake-tencent-asr").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeTencentAsr":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """What ``SISONG_ASR_ENDPOINT`` is set to."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, code: str, message: str = "fake error") -> None:
        with self._lock:
            self._errors.append((code, message))

    def answer(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        action = headers.get("x-tc-action", "")
        signature_ok, auth_error = self._check_signature(headers, body)
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        with self._lock:
            self.calls.append(AsrCall(action, params, headers, signature_ok))
            error = self._errors.popleft() if self._errors else None
        if auth_error:
            error = auth_error
        elif action != "SentenceRecognition":
            error = ("InvalidAction", f"action {action} not modelled")
        if error is None:
            try:
                pcm = base64.b64decode(params.get("Data", ""), validate=True)
            except ValueError:
                pcm = b""
            if not pcm or len(pcm) != int(params.get("DataLen") or -1):
                error = ("InvalidParameter", "Data/DataLen mismatch")
        if error is not None:
            return {"Response": {"Error": {"Code": error[0], "Message": error[1]}, "RequestId": request_id}}
        if self.latency:
            time.sleep(self.latency)
        rate = int(params.get("InputSampleRate") or 16000)
        return {"Response": {"Result": self.transcriber(pcm, params), "AudioDuration": len(pcm) // 2 * 1000 // rate,
                             "WordSize": 0, "WordList": None, "RequestId": request_id}}

    def _check_signature(self, headers: dict[str, str], body: bytes) -> tuple[bool, tuple[str, str] | None]:
        auth = headers.get("authorization", "")
        try:
            algorithm, rest = auth.split(" ", 1)
            fields = dict(part.strip().split("=", 1) for part in rest.split(","))
            secret_id, date, service, _ = fields["Credential"].split("/")
        except (ValueError, KeyError):
            return False, ("AuthFailure.InvalidAuthorization", "malformed Authorization")
        if secret_id != self.secret_id:
            return False, ("AuthFailure.SecretIdNotFound", "unknown SecretId")
        expected = tc3_signature(
            self.secret_key, method="POST", host=headers.get("host", ""),
            content_type=headers.get("content-type", ""), body=body, timestamp=headers.get("x-tc-timestamp", ""),
            date=date, service=service,
        )
        if algorithm != "TC3-HMAC-SHA256" or not hmac.compare_digest(expected, fields.get("Signature", "")):
            return False, ("AuthFailure.SignatureFailure", "signature mismatch")
        return True, None


class _Handler(BaseHTTPRequestHandler):
    asr: FakeTencentAsr

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        payload = json.dumps(self.asr.answer(headers, body), ensure_ascii=False).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
