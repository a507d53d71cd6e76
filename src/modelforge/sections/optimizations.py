"""The ``optimizations`` section of a provider: ``OptimizationConfig``, validated.

::

    providers:
      openai:
        optimizations: {seed: 7, json_mode: true}
      anthropic:
        optimizations: {prompt_caching: {min_tokens: 2048}}
      google:
        optimizations:
          context_caching: {min_tokens: 4096, ttl: 600}
          safety_settings: {HARM_CATEGORY_HARASSMENT: BLOCK_ONLY_HIGH}   # only with enable_optimizations
      ollama:
        optimizations: {keep_alive: 30m, num_ctx: auto, max_num_ctx: 16384}
      anywhere:
        optimizations: {enabled: false}      # this provider's requests are sent untouched

Every switch is on by default (for the families it concerns) once optimizations are enabled; ``false``
turns one off. Keys that belong to another family are accepted and ignored there, so one section can be
copied between providers. Errors are ``ValueError`` naming the key (``optimizations.num_ctx``) and what is
allowed, like the ``retry`` and ``rate_limit`` sections'.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_CONTEXT_TTL_SECONDS",
    "DEFAULT_KEEP_ALIVE",
    "DEFAULT_MAX_NUM_CTX",
    "DEFAULT_SEED",
    "KNOWN_KEYS",
    "OptimizationConfig",
    "validate_section",
]

DEFAULT_SEED = 42
DEFAULT_KEEP_ALIVE = "10m"
DEFAULT_MAX_NUM_CTX = 32768
DEFAULT_CONTEXT_TTL_SECONDS = 600.0
MIN_NUM_CTX = 2048

KNOWN_KEYS = (
    "enabled",
    "seed",
    "json_mode",
    "prompt_caching",
    "context_caching",
    "safety_settings",
    "keep_alive",
    "num_ctx",
    "max_num_ctx",
)

# Go-style durations as Ollama reads them ("10m", "1h30m", "45s", "-1" for "forever") or plain seconds.
_GO_DURATION = re.compile(r"^-?(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$|^-?\d+$")
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")
_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class OptimizationConfig:
    """The optimizations of one provider.

    * ``enabled``: ``false`` sends every request of the provider untouched;
    * ``seed``: the ``seed`` sent to OpenAI-compatible servers (``None``: the family's default, which is
      ``DEFAULT_SEED`` except for GitHub Copilot; ``False``: none). With a seed, sampling the same prompt
      again at ``temperature > 0`` returns the same answer: ``seed: false`` for variety;
    * ``json_mode``: ask for a JSON object (OpenAI ``response_format``) when the prompt asks for JSON
      (``None``: the family's default);
    * ``prompt_caching`` / ``prompt_caching_min_tokens``: Anthropic cache breakpoints, and the shortest
      prefix worth one (``None``: Anthropic's minimum for the model, 1024 or 2048 for Haiku);
    * ``context_caching`` / ``context_caching_min_tokens`` / ``context_caching_ttl``: Gemini cached
      contents for a long static prefix, the shortest worth one, and how long each lives (seconds);
    * ``safety_settings``: Gemini harm category -> block threshold, by their API names. Like everything
      here they apply only when optimizations are enabled (``enable_optimizations``) and this section is
      not ``enabled: false``; otherwise Gemini's defaults apply;
    * ``keep_alive``: how long Ollama keeps the model loaded (a Go duration such as ``10m``, seconds, or
      ``None``: Ollama's default);
    * ``num_ctx`` / ``max_num_ctx``: Ollama's context size (``"auto"``: sized to each prompt, a number:
      fixed, ``None``: Ollama's default) and the largest ``auto`` may choose.
    """

    enabled: bool = True
    seed: int | Literal[False] | None = None
    json_mode: bool | None = None
    prompt_caching: bool = True
    prompt_caching_min_tokens: int | None = None
    context_caching: bool = True
    context_caching_min_tokens: int | None = None
    context_caching_ttl: float = DEFAULT_CONTEXT_TTL_SECONDS
    safety_settings: dict[str, str] = field(default_factory=dict)
    keep_alive: str | int | None = DEFAULT_KEEP_ALIVE
    num_ctx: int | Literal["auto"] | None = "auto"
    max_num_ctx: int = DEFAULT_MAX_NUM_CTX

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> OptimizationConfig:
        """Settings from a provider's ``optimizations`` section (``None``: all defaults).

        Raises ``ValueError`` naming the key and what is allowed."""
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ValueError(
                "optimizations must be a mapping of optimization settings; allowed keys: "
                + ", ".join(KNOWN_KEYS)
            )
        unknown = sorted(str(key) for key in section if key not in KNOWN_KEYS)
        if unknown:
            raise ValueError(f"unknown key optimizations.{unknown[0]}; allowed keys: {', '.join(KNOWN_KEYS)}")
        values: dict[str, Any] = {}
        if "enabled" in section:
            values["enabled"] = _flag(section["enabled"], "enabled")
        if "seed" in section:
            values["seed"] = _seed(section["seed"])
        if "json_mode" in section:
            values["json_mode"] = _flag(section["json_mode"], "json_mode")
        if "prompt_caching" in section:
            on, extra = _switch(section["prompt_caching"], "prompt_caching", ("min_tokens",))
            values["prompt_caching"] = on
            if "min_tokens" in extra:
                values["prompt_caching_min_tokens"] = _count(extra["min_tokens"], "prompt_caching.min_tokens")
        if "context_caching" in section:
            on, extra = _switch(section["context_caching"], "context_caching", ("min_tokens", "ttl"))
            values["context_caching"] = on
            if "min_tokens" in extra:
                values["context_caching_min_tokens"] = _count(
                    extra["min_tokens"], "context_caching.min_tokens"
                )
            if "ttl" in extra:
                values["context_caching_ttl"] = _ttl(extra["ttl"])
        if "safety_settings" in section:
            values["safety_settings"] = _safety_settings(section["safety_settings"])
        if "keep_alive" in section:
            values["keep_alive"] = _keep_alive(section["keep_alive"])
        if "num_ctx" in section:
            values["num_ctx"] = _num_ctx(section["num_ctx"])
        if "max_num_ctx" in section:
            values["max_num_ctx"] = _count(section["max_num_ctx"], "max_num_ctx", minimum=MIN_NUM_CTX)
        return cls(**values)


def validate_section(section: Mapping[str, Any] | None) -> None:
    """Check a whole ``optimizations`` section (for the config schema); ``ValueError`` when it is wrong."""
    OptimizationConfig.from_config(section)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"optimizations.{key} must be true or false, got {value!r}")
    return value


def _count(value: Any, key: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"optimizations.{key} must be a whole number >= {minimum}, got {value!r}")
    return value


def _seed(value: Any) -> int | Literal[False] | None:
    if value is False:
        return False
    if value is True:
        return DEFAULT_SEED
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"optimizations.seed must be a whole number, true or false, got {value!r}")


def _switch(value: Any, key: str, options: tuple[str, ...]) -> tuple[bool, dict[str, Any]]:
    """A switch written ``true``/``false`` or as a mapping of its options (a mapping means on)."""
    if isinstance(value, bool):
        return value, {}
    if isinstance(value, Mapping):
        allowed = ("enabled", *options)
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise ValueError(
                f"unknown key optimizations.{key}.{unknown[0]}; allowed keys: {', '.join(allowed)}"
            )
        on = _flag(value.get("enabled", True), f"{key}.enabled")
        return on, {k: v for k, v in value.items() if k != "enabled"}
    raise ValueError(
        f"optimizations.{key} must be true, false or a mapping with {', '.join(options)}; got {value!r}"
    )


def _ttl(value: Any) -> float:
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (found := _SECONDS.match(value.strip())):
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds is None or not math.isfinite(seconds) or seconds < 60:
        raise ValueError(
            "optimizations.context_caching.ttl must be seconds (a number, or 600s, 10m, 1h) of at least 60, "
            f"got {value!r}"
        )
    return seconds


def _keep_alive(value: Any) -> str | int | None:
    if value is False or value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _GO_DURATION.match(value.strip()):
        return value.strip()
    raise ValueError(
        "optimizations.keep_alive must be a duration such as 10m, 1h or 30s, a number of seconds (-1: keep "
        f"loaded), or false; got {value!r}"
    )


def _num_ctx(value: Any) -> int | Literal["auto"] | None:
    if value is False or value is None:
        return None
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 256:
        return value
    raise ValueError(f'optimizations.num_ctx must be "auto", a whole number >= 256, or false; got {value!r}')


def _safety_settings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(
            "optimizations.safety_settings must be a mapping of harm category to threshold, such as "
            "{HARM_CATEGORY_HARASSMENT: BLOCK_ONLY_HIGH}"
        )
    categories, thresholds = _harm_names()
    settings: dict[str, str] = {}
    for category, threshold in value.items():
        name, level = str(category).strip().upper(), str(threshold).strip().upper()
        if categories and name not in categories:
            raise ValueError(
                f"optimizations.safety_settings.{category}: unknown harm category; allowed: "
                + ", ".join(categories)
            )
        if thresholds and level not in thresholds:
            raise ValueError(
                f"optimizations.safety_settings.{category} must be one of: {', '.join(thresholds)}; "
                f"got {threshold!r}"
            )
        settings[name] = level
    return settings


def _harm_names() -> tuple[list[str], list[str]]:
    """The harm categories and thresholds the installed google-genai knows (empty when not installed)."""
    try:
        from google.genai import types
    except ImportError:
        return [], []
    categories = [c.name for c in types.HarmCategory if c.name != "HARM_CATEGORY_UNSPECIFIED"]
    thresholds = [t.name for t in types.HarmBlockThreshold if t.name != "HARM_BLOCK_THRESHOLD_UNSPECIFIED"]
    return categories, thresholds
