"""Settings, read once from the environment (prefix ``SISONG_``) and ``.env``.

A bad setting must stop the service at start with one line that names it, not
surface later as a confusing failure on the first message.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFICIAL_API_BASE = "https://api.weixin.qq.com/cgi-bin/"
DEV_APPID = "wxsisongdevappid"
DEV_TOKEN = "sisongdevtoken"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SISONG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    wechat_token: str = Field(default=DEV_TOKEN, min_length=3, max_length=32)
    wechat_appid: str = Field(default=DEV_APPID, min_length=1)
    wechat_secret: str = ""
    wechat_aes_key: str | None = None
    wechat_api_base: str = OFFICIAL_API_BASE

    database_url: str = "sqlite:///./sisong.db"
    redis_url: str | None = None
    queue_path: str | None = None
    # Where messages go that could not be written to the database (replayed when it is back).
    spool_dir: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Seconds uvicorn's supervisor waits for a worker to answer its health check before replacing it. A
    # worker importing everything on a busy machine took longer than uvicorn's 5 s, was killed, and its
    # replacement again, so the service ran on fewer workers without saying so. Not much longer: the
    # supervisor waits that long on a silent worker before it even looks at a SIGTERM.
    worker_healthcheck: int = Field(default=15, ge=5, le=120)
    embedded_worker: Literal["auto", "true", "false"] = "auto"

    wecom_robot_url: str | None = None

    reply_deadline: float = Field(default=4.0, gt=0, le=4.8)
    handler_threads: int = Field(default=8, ge=1, le=256)
    dedupe_ttl: int = Field(default=300, ge=10)
    session_ttl: int = Field(default=1800, ge=60)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    follower_rate: str = Field(default="20/minute", pattern=r"^\d+\s*/\s*\d*\s*(second|minute|hour|day)s?$")
    # Wrong binding codes ("绑定 …") allowed per follower and account-wide per window (docs/households.md).
    bind_fail_rate: str = Field(default="5/hour", pattern=r"^\d+\s*/\s*\d*\s*(second|minute|hour|day)s?$")
    bind_fail_global_rate: str = Field(
        default="200/hour", pattern=r"^\d+\s*/\s*\d*\s*(second|minute|hour|day)s?$"
    )
    api_timeout: float = Field(default=5.0, gt=0)
    api_retry_attempts: int = Field(default=4, ge=1, le=10)
    api_retry_wait: float = Field(default=1.0, ge=0)

    # Fault tolerance of the message path (docs/operations.md, "Faults").
    redis_timeout: float = Field(default=0.5, gt=0, le=5)
    db_timeout: float = Field(default=2.0, gt=0, le=30)
    breaker_seconds: float = Field(default=3.0, gt=0, le=300)
    claim_lease: float = Field(default=5.0, ge=1, le=600)
    # With Redis: messages whose unit of work writes nothing are claimed and settled in Redis and
    # logged to the database in batches (storage.redis_inbox, bot.flusher). Off: every message
    # commits its inbox row twice, as without Redis.
    write_behind: bool = True
    log_flush_interval: float = Field(default=0.2, gt=0, le=60)
    sweep_interval: float = Field(default=2.0, gt=0, le=300)
    max_attempts: int = Field(default=3, ge=1, le=10)
    signature_window: int = Field(default=300, ge=0)
    body_timeout: float = Field(default=5.0, gt=0, le=60)

    # Pushes (docs/jobs.md, docs/architecture.md "Pushes"). The template id of the job notice
    # (service accounts; unset: outside the 48-hour window a follower cannot be reached) and which
    # keyword of that template carries which field of the posting.
    wechat_template_job: str | None = None
    wechat_template_job_fields: str = "title:thing1,employer:thing2,location:thing3,salary:thing4,signup:thing5"
    # 四问一查 (issue 10): the invitation's template outside the 48-hour window, and its keyword lines.
    wechat_template_survey: str | None = None
    wechat_template_survey_fields: str = "title:thing1,count:thing2,signup:thing3"
    survey_questionnaire: str | None = None  # a YAML file; default: the one shipped (bot/survey/)
    survey_remind_after: float = Field(default=172800.0, ge=60, le=30 * 86400)  # seconds after the invitation
    # No invitation, reminder or reply to households in these hours (township clock), "HH:MM-HH:MM".
    quiet_hours: str = Field(default="21:00-08:00", pattern=r"^\s*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}\s*$")
    # Sends per window across every worker (Redis-backed; per process without Redis).
    push_rate: str = Field(default="50/second", pattern=r"^\d+\s*/\s*\d*\s*(second|minute|hour|day)s?$")
    push_threads: int = Field(default=16, ge=1, le=128)  # concurrent WeChat calls per process
    push_lease: float = Field(default=30.0, ge=1, le=3600)  # a sender's hold on rows it has not called yet
    # WeChat dedupes template sends on client_msg_id for 10 minutes: a template row whose worker died
    # mid-call is sent again (same id) only within this many seconds of its first call.
    push_dedupe_window: float = Field(default=540.0, ge=0, le=600)
    push_backoff: float = Field(default=30.0, gt=0, le=3600)  # first wait after -1 / network
    # A sending process beats every second; one silent this long is taken for dead and its rows recovered.
    push_heartbeat_timeout: float = Field(default=5.0, ge=2, le=600)

    # Voice messages (docs/voice.md): which speech recogniser transcribes voice that WeChat did not.
    # "auto": the local model if SISONG_ASR_MODEL_DIR is set, else Tencent Cloud if its keys are set, else off.
    asr_engine: Literal["auto", "local", "tencent", "off"] = "auto"
    asr_model_dir: str | None = None  # a sherpa-onnx model directory (model*.onnx + tokens.txt)
    asr_model_type: Literal["auto", "paraformer", "sense_voice", "dolphin"] = "auto"
    asr_threads: int = Field(default=1, ge=1, le=16)  # CPU threads of one local decode
    asr_secret_id: str | None = None  # Tencent Cloud API key (sentence recognition)
    asr_secret_key: str | None = None
    asr_region: str = "ap-guangzhou"
    asr_endpoint: str = "asr.tencentcloudapi.com"  # host, or http(s)://host:port (tests use a loopback fake)
    asr_tencent_model: str = "16k_zh_dialect"  # Tencent's engine type: the dialect model covers 西南官话
    asr_timeout: float = Field(default=30.0, gt=0, le=300)  # time limit of one transcription
    asr_max_seconds: float = Field(default=60.0, gt=0, le=600)  # WeChat allows 60 s; longer is refused kindly
    asr_min_confidence: float = Field(default=0.5, ge=0, le=1)  # below it (when the engine says) ask again
    # Keep the audio of transcribed voice messages (clips that could not be understood are always kept
    # for a cadre); where kept clips go: SISONG_VOICE_DIR, else beside the SQLite database, else ./sisong-voice.
    keep_voice: bool = False
    voice_dir: str | None = None
    voice_retention_days: int = Field(default=30, ge=1, le=3650)  # kept clips older than this are deleted

    # The township this deployment serves, and where its people read clocks.
    township: str = Field(default="本镇", min_length=1, max_length=64)
    timezone: str = "Asia/Shanghai"

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("wechat_token")
    @classmethod
    def _token_charset(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]+", value):
            raise ValueError("WeChat tokens are 3-32 letters or digits")
        return value

    @field_validator("wechat_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.fullmatch(r"[A-Za-z0-9]{43}", value):
            raise ValueError("EncodingAESKey must be 43 letters or digits")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("wechat_template_job", "wechat_template_survey")
    @classmethod
    def _template_id_shape(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if value and not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", value):
            raise ValueError("a template id is the 43-character id from the admin console (letters, digits, - _)")
        return value or None

    @field_validator("wechat_template_job_fields", "wechat_template_survey_fields")
    @classmethod
    def _template_fields_shape(cls, value: str) -> str:
        from bot.push_content import parse_template_fields

        parse_template_fields(value)  # raises ValueError naming the bad part
        return value

    @field_validator("wechat_api_base")
    @classmethod
    def _api_base_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value if value.endswith("/") else value + "/"

    @field_validator("wecom_robot_url")
    @classmethod
    def _robot_url_shape(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _database_url_shape(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", value):
            raise ValueError("use postgresql://user@host/db or sqlite:///file.db")
        return value

    @model_validator(mode="after")
    def _real_account_is_complete(self) -> "Settings":
        """The dev defaults let `make run` work out of the box; a real AppID needs the rest."""
        if self.wechat_appid != DEV_APPID:
            if not self.wechat_secret:
                raise ValueError("SISONG_WECHAT_SECRET: required when SISONG_WECHAT_APPID is set")
            if self.wechat_token == DEV_TOKEN:
                raise ValueError("SISONG_WECHAT_TOKEN: required when SISONG_WECHAT_APPID is set")
        return self

    @model_validator(mode="after")
    def _asr_engine_is_complete(self) -> "Settings":
        """A chosen engine must have what it needs, or the first voice message would find out."""
        if self.asr_engine == "local" and not self.asr_model_dir:
            raise ValueError("SISONG_ASR_MODEL_DIR: required when SISONG_ASR_ENGINE=local")
        if self.asr_engine == "tencent" and not (self.asr_secret_id and self.asr_secret_key):
            raise ValueError("SISONG_ASR_SECRET_ID: SISONG_ASR_SECRET_ID and SISONG_ASR_SECRET_KEY are required "
                             "when SISONG_ASR_ENGINE=tencent")
        if self.asr_model_dir and self.asr_choice == "local" and not Path(self.asr_model_dir).is_dir():
            raise ValueError(f"SISONG_ASR_MODEL_DIR: no such directory {self.asr_model_dir}")
        return self

    @model_validator(mode="after")
    def _database_waits_fit_the_deadline(self) -> "Settings":
        """A hung database must cost less than WeChat's wait, so "系统繁忙" still arrives in time."""
        if self.db_timeout >= self.reply_deadline:
            raise ValueError(
                f"SISONG_DB_TIMEOUT: must be shorter than SISONG_REPLY_DEADLINE ({self.reply_deadline})"
            )
        return self

    @property
    def is_dev_account(self) -> bool:
        return self.wechat_appid == DEV_APPID

    @property
    def safe_mode(self) -> bool:
        return self.wechat_aes_key is not None

    @property
    def uses_redis(self) -> bool:
        return self.redis_url is not None

    @property
    def run_embedded_worker(self) -> bool:
        if self.embedded_worker == "auto":
            return not self.uses_redis
        return self.embedded_worker == "true"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file on the embedded default, where the queue file goes beside it."""
        match = re.match(r"^sqlite(\+\w+)?:///(.*)$", self.database_url)
        if not match or not match.group(2) or match.group(2) == ":memory:":
            return None
        return Path(match.group(2))

    @property
    def spool_path(self) -> Path:
        """The spool directory: configured, else beside the SQLite database, else ./sisong-spool."""
        if self.spool_dir:
            return Path(self.spool_dir)
        db = self.sqlite_path
        if db is not None:
            return db.with_name(db.stem + "-spool")
        return Path("sisong-spool")

    @property
    def asr_choice(self) -> str:
        """The engine that transcribes voice ("local", "tencent" or "off"), from SISONG_ASR_ENGINE."""
        if self.asr_engine != "auto":
            return self.asr_engine
        if self.asr_model_dir:
            return "local"
        if self.asr_secret_id and self.asr_secret_key:
            return "tencent"
        return "off"

    @property
    def voice_path(self) -> Path:
        """Where kept voice clips go: configured, else beside the SQLite database, else ./sisong-voice."""
        if self.voice_dir:
            return Path(self.voice_dir)
        db = self.sqlite_path
        if db is not None:
            return db.with_name(db.stem + "-voice")
        return Path("sisong-voice")

    @property
    def queue_file(self) -> Path:
        if self.queue_path:
            return Path(self.queue_path)
        db = self.sqlite_path
        if db is not None:
            return db.with_name(db.stem + "-queue.db")
        return Path("sisong-queue.db")


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = str(first["msg"]).removeprefix("Value error, ")
        if first["loc"]:
            reason = f"SISONG_{str(first['loc'][0]).upper()}: {reason}"
        raise ConfigError(f"配置错误 {reason}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
