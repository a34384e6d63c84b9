"""Settings validation, URL mapping, and personal data kept out of logs."""

from __future__ import annotations

import logging

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import MaskingFilter, setup_logging
from storage.privacy import mask_text, short_openid
from storage.db import normalize_url


@pytest.mark.parametrize(
    ("pasted", "mapped"),
    [
        ("postgresql://user@host/db", "postgresql+psycopg://user@host/db"),
        ("postgres://user:pw@host:5433/db", "postgresql+psycopg://user:pw@host:5433/db"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///file.db", "sqlite:///file.db"),
        (" sqlite:////abs/path.db ", "sqlite:////abs/path.db"),
    ],
)
def test_pasted_database_urls_map_to_shipped_drivers(pasted: str, mapped: str) -> None:
    assert normalize_url(pasted) == mapped


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("SISONG_WECHAT_AES_KEY", "tooshort", "SISONG_WECHAT_AES_KEY"),
        ("SISONG_PORT", "eighty", "SISONG_PORT"),
        ("SISONG_DATABASE_URL", "mysql://x@y/z", "SISONG_DATABASE_URL"),
        ("SISONG_REDIS_URL", "localhost:6379", "SISONG_REDIS_URL"),
        ("SISONG_WECHAT_API_BASE", "api.weixin.qq.com", "SISONG_WECHAT_API_BASE"),
        ("SISONG_WECHAT_TOKEN", "has space", "SISONG_WECHAT_TOKEN"),
    ],
)
def test_malformed_setting_fails_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert named in message and "\n" not in message


def test_env_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("SISONG_PORT=9123\nSISONG_WECHAT_API_BASE=http://127.0.0.1:9/cgi-bin\n")
    settings = load_settings()
    assert settings.port == 9123
    assert settings.wechat_api_base == "http://127.0.0.1:9/cgi-bin/"


def test_queue_file_sits_next_to_the_sqlite_database() -> None:
    settings = load_settings(database_url="sqlite:///data/sisong.db")
    assert str(settings.queue_file) == "data/sisong-queue.db"
    assert settings.run_embedded_worker
    assert not load_settings(redis_url="redis://127.0.0.1:6379/0").run_embedded_worker


def test_personal_data_is_masked() -> None:
    text = "张三 电话13812345678 身份证53012319800101123X openid oAbCdEfGhIjKlMnOpQrStUvWxYz"
    masked = mask_text(text)
    assert "13812345678" not in masked and "138****5678" in masked
    assert "53012319800101123X" not in masked and "530123********123X" in masked
    card = mask_text("卡号6217003810026781234")
    assert "6217003810026781234" not in card and card.endswith("6217 **** 1234")
    assert "oAbCdEfGhIjKlMnOpQrStUvWxYz" not in masked
    assert short_openid("oAbCdEfGhIjKlMnOpQrStUvWxYz") == "oAbC…WxYz"


def test_log_lines_never_carry_phone_or_id_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", json_lines=True)
    logging.getLogger("sisong.test").info("household phone %s", "13987654321", extra={"who": "13700001111"})
    err = capsys.readouterr().err
    assert "13987654321" not in err and "13700001111" not in err
    assert "139****4321" in err


def test_masking_filter_survives_bad_format_strings() -> None:
    record = logging.makeLogRecord({"msg": "value %d", "args": ("not a number",)})
    assert MaskingFilter().filter(record)
    assert record.args is None


def test_real_account_without_secret_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SISONG_WECHAT_APPID", "wx1234567890abcdef")
    monkeypatch.setenv("SISONG_WECHAT_TOKEN", "realtoken123")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "SISONG_WECHAT_SECRET" in str(info.value)
