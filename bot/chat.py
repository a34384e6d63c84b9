"""``sisong chat``: a terminal follower, so anyone can try the account without WeChat.

Requests are signed (and encrypted in safe mode) exactly as WeChat would send
them, so what you see is what a household would see.
"""

from __future__ import annotations

import httpx
from rich.console import Console

from bot.config import Settings
from bot.simulator import DecodedReply, WeChatSimulator

HELP = """直接输入文字就是发消息。特殊命令：
  /voice 文字     发一条语音（带语音识别结果）；/voice 不带文字 = 没识别出来的语音
  /click KEY      点菜单（POLICY_QA、JOBS、SURVEY、CONTACT_HELPER）
  /subscribe [场景]  关注（可带二维码场景）；/unsubscribe 取消关注
  /image          发一张图片；/location 发位置
  /help           显示本说明；/quit 退出"""


def build_message(sim: WeChatSimulator, line: str) -> str | None:
    """Turn a REPL line into the XML WeChat would send, or None for a local command."""
    if not line.startswith("/"):
        return sim.text(line)
    command, _, arg = line[1:].partition(" ")
    arg = arg.strip()
    if command == "voice":
        return sim.voice(recognition=arg or None)
    if command == "click":
        return sim.event("CLICK", event_key=arg or "POLICY_QA")
    if command == "subscribe":
        return sim.event("subscribe", event_key=f"qrscene_{arg}" if arg else None)
    if command == "unsubscribe":
        return sim.event("unsubscribe")
    if command == "image":
        return sim.image()
    if command == "location":
        return sim.location(25.04, 102.71, 15, "村委会")
    return None


def describe(reply: DecodedReply) -> str:
    if reply.status != 200:
        return f"[HTTP {reply.status}] {reply.raw.decode('utf-8', 'replace')}"
    if reply.is_success:
        return "（没有直接回复；如有答复，会以客服消息发送）"
    if reply.text is not None:
        return reply.text
    return f"[{reply.msg_type} 消息]"


def run_repl(settings: Settings, url: str, openid: str, mode: str) -> None:
    console = Console(soft_wrap=True)  # Chinese has no spaces: let the terminal wrap
    sim = WeChatSimulator(
        settings.wechat_token, settings.wechat_appid, settings.wechat_aes_key, mode=mode, openid=openid
    )
    console.print(f"[bold]四送助手 chat[/bold] → {url} ({mode} mode, openid {openid})")
    console.print(HELP)
    with httpx.Client(timeout=10) as client:
        while True:
            try:
                line = console.input("[green]我> [/green]").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return
            xml = build_message(sim, line)
            if xml is None:
                console.print(HELP)
                continue
            try:
                reply = sim.post(client, xml, path=url)
            except httpx.HTTPError as exc:
                console.print(f"[red]连不上服务 {url}: {type(exc).__name__}。先运行 sisong serve。[/red]")
                continue
            console.print(f"[cyan]助手>[/cyan] {describe(reply)}")
