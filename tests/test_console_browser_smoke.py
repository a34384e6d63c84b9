"""The console in a real headless Chromium: log in on a phone-sized screen and see the console."""

from __future__ import annotations

from typing import Any

import pytest

from bot.services import Services
from storage.accounts import create_user
from tests.support.browser import PHONE, log_in, screenshot

PASSWORD = "correct-horse-9"


@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_login_in_a_real_browser(services: Services, live_url: str, browser: Any) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{live_url}/console/")
    assert "/console/login" in page.url
    page.fill("#name", "王镇长")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    assert "账号或密码不对" in page.inner_text("[role=alert]")
    log_in(page, live_url, "王镇长", PASSWORD)
    assert "王镇长（镇管理员）" in page.inner_text("header")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "login-375")
    context.close()
