"""Knowledge-base settings (environment prefix ``SISONG_``, ``.env`` supported).

Kept apart from bot.config so the knowledge base can be used (CLI, bench,
tests) without the webhook's settings, and so its knobs are documented in one
place (docs/knowledge.md).
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _user_cache() -> Path:
    """$XDG_CACHE_HOME/sisong, else ~/.cache/sisong; a user without a home gets a private temp name."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "sisong"
    try:
        return Path.home() / ".cache" / "sisong"
    except RuntimeError:
        return Path(tempfile.gettempdir()) / f"sisong-{os.getuid()}"


class KnowledgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SISONG_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore")

    # An extra synonym file cadres edit, read on top of knowledge/data/synonyms.txt.
    kb_synonyms_file: Path | None = None
    # How often (seconds) a worker checks whether the knowledge base changed. 0 (the default):
    # before every question, one indexed one-row read, so a synonym or FAQ a cadre adds answers
    # the very next question in every worker. Raise it only to spare a busy database that read.
    kb_reload_seconds: float = Field(default=0.0, ge=0)
    # Below this share of the question covered by the best article, hand over to a person.
    kb_min_confidence: float = Field(default=0.6, ge=0, le=1)
    # Target length of an answer's excerpt, in characters: the asked fact in one or two short
    # sentences an elderly reader takes in at a glance on a phone.
    kb_answer_chars: int = Field(default=120, ge=60, le=600)
    # Answers kept per worker (least recently used go first) for questions asked again with the
    # same previous topic; emptied whenever the knowledge base or the synonym file changes. 0: off.
    kb_answer_cache: int = Field(default=4096, ge=0)
    # Where the compact word dictionary (knowledge/nlp/dictionary.py) is kept once built, so that
    # every worker maps the same files instead of building its own (~1 s and ~20 MB each). Files
    # are named after a digest of what they are built from. Empty: each process builds in memory.
    # The default is the user's own cache directory, not a shared /tmp another account could fill.
    kb_dictionary_cache: str = Field(default_factory=lambda: str(_user_cache() / "dictionary"))


@lru_cache(maxsize=1)
def get_knowledge_settings() -> KnowledgeSettings:
    return KnowledgeSettings()
