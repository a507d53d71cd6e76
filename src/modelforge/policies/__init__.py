"""Policies wrapped around every model call, each a small object with one job.

``retry`` (one retry budget per provider), ``ratelimit`` (requests and tokens per minute, shared through
Redis), ``fallback`` and ``circuit`` (moving to another provider when one degrades).

Names are imported on first use (``from modelforge.policies import FallbackChatModel``), so importing one
policy module does not load the others.
"""

from __future__ import annotations

from modelforge._lazy import lazy_exports

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # fallback and degradation
    "AllProvidersFailedError": "modelforge.exceptions",
    "CircuitBreaker": "modelforge.policies.circuit",
    "CircuitBreakerRegistry": "modelforge.policies.circuit",
    "CircuitOpenError": "modelforge.exceptions",
    "CircuitState": "modelforge.policies.circuit",
    "FallbackChatModel": "modelforge.policies.fallback",
    "FallbackRunnable": "modelforge.policies.fallback",
    "FallbackTarget": "modelforge.policies.fallback_config",
    "breaker_for": "modelforge.policies.circuit",
    "build_fallback_chain": "modelforge.policies.fallback_config",
    "default_breakers": "modelforge.policies.circuit",
    "no_fallbacks": "modelforge.policies.fallback_config",
    "restart_info": "modelforge.policies.fallback",
    "should_fall_back": "modelforge.policies.fallback",
    "with_fallbacks_of": "modelforge.policies.fallback",
    # rate limits
    "LocalBackend": "modelforge.policies.ratelimit",
    "RateLimitConfig": "modelforge.policies.ratelimit",
    "RateLimiter": "modelforge.policies.ratelimit",
    "RedisBackend": "modelforge.policies.ratelimit",
    "RequestCounter": "modelforge.policies.ratelimit",
    "Reservation": "modelforge.policies.ratelimit",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
