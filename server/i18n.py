"""The one Vietnamese/English catalogue for every user-facing string.

Messages live in ``web/i18n/messages.json`` as ``{"key": {"vi": "...", "en": "..."}}``,
with ``{name}`` placeholders. Lower layers (media, storage, transcription) never render
text: their errors carry a catalogue key (``code``) and parameters, rendered here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("vi", "en")
CATALOGUE_PATH = Path(__file__).resolve().parent.parent / "web" / "i18n" / "messages.json"


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    with CATALOGUE_PATH.open(encoding="utf-8") as f:
        data: dict[str, dict[str, str]] = json.load(f)
    return data


def normalise_language(lang: str | None, default: str = "vi") -> str:
    return lang if lang in LANGUAGES else default


class _SafeParams(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def t(key: str, lang: str = "vi", params: Mapping[str, object] | None = None) -> str:
    """The message ``key`` in ``lang``; an unknown key renders as the key itself
    (tests/test_i18n.py makes sure no code uses one)."""
    entry = catalogue().get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["vi"]
    if params:
        text = text.format_map(_SafeParams({k: str(v) for k, v in params.items()}))
    return text


def both(key: str, params: Mapping[str, object] | None = None) -> dict[str, str]:
    """The message in every language, as error bodies carry it."""
    return {lang: t(key, lang, params) for lang in LANGUAGES}


def for_language(lang: str) -> dict[str, str]:
    """All messages in one language (served to the browser's ES modules)."""
    return {k: v.get(lang) or v["vi"] for k, v in catalogue().items()}
