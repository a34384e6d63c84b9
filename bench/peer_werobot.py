"""The peer for bench/webhook.py: a WeRoBot echo, the floor a Python WeChat framework sets.

Issue 13 compares Sisong's message path with what people deploy instead: a
WeRoBot (``werobot`` package) robot answering a text message with its own
text, served by gunicorn. This is that robot, as WeRoBot's docs write it,
with signature checking on (WeRoBot always checks) and, when
``PEER_AES_KEY`` is set, safe mode (``encoding_aes_key``; WeRoBot decrypts
requests that carry ``encrypt_type=aes`` and then encrypts its replies).

Two settings differ from WeRoBot's defaults, both so the peer measures the
framework and not a side effect:

* ``SESSION_STORAGE=False``: by default WeRoBot reads and writes a session row
  in a local SQLite file for every message even when the handler takes no
  session; with two gunicorn workers on one file that is lock contention, not
  echo. (Sisong's conversation state is in Redis and is part of its path.)
* one robot per mode: once a WeRoBot process has decrypted one message it
  encrypts every later reply, plain requests included, so the plain peer is
  started without an AES key and the safe peer with one.

Run by bench/webhook.py as::

    PEER_TOKEN=... PEER_APPID=... [PEER_AES_KEY=...] gunicorn -w 2 -k sync bench.peer_werobot:application
"""

from __future__ import annotations

import os

import werobot

robot = werobot.WeRoBot(
    token=os.environ["PEER_TOKEN"],
    app_id=os.environ.get("PEER_APPID") or None,
    encoding_aes_key=os.environ.get("PEER_AES_KEY") or None,
    SESSION_STORAGE=False,
)


@robot.text
def echo(message):  # noqa: ANN001, ANN201 - WeRoBot's handler signature
    return message.content


application = robot.wsgi
