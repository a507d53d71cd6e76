"""``batch_invoke`` and ``resume_batch``: live calls or the provider's batch API, chosen per batch.

The choice: ``use_batch_api=True`` sends the batch through the provider's batch API (OpenAI's Batch API,
Anthropic's Message Batches; any other family is a ``ConfigurationError`` naming the ones that have one);
``"auto"`` does so for batches of at least the ``batch`` section's ``min_batch_api_items``, unless the call
says ``urgent=True`` (then, and for small batches, it goes live); ``False`` goes live; ``None`` follows
the provider's ``batch`` section (live when it says nothing).

The model always comes from ``registry.get_llm``: live calls go through it whole (optimizers, cache, rate
limits, retries, fallbacks); the batch API path builds its requests with the provider's own LangChain model
at the bottom of it (``innermost``) and its SDK client, shaped by the provider's optimizer as live calls
are. A model with fallbacks has no single provider: its batches go live. A batch API job is saved under an id
(``job_id=`` to choose it; reported in every ``BatchProgress``) so ``resume_batch`` can collect it from
any process; ``batch_invoke`` with the ``job_id`` of a saved job of the same inputs resumes that job
(both first finish a submission the stopped process left half done).

A server that answers 404/405/501 at its batch endpoints (an ``openai_compatible`` vLLM or OpenRouter) has
no batch API: with ``"auto"`` the batch goes live with a WARNING; with ``True`` it is a
``ConfigurationError`` (``BATCH_API_UNAVAILABLE``). Without ``max_tokens_per_job`` in the ``batch``
section, a provider whose ``rate_limit`` sets ``tokens_per_minute`` gets that many estimated input tokens
per provider job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel

from modelforge.batch._anthropic_api import AnthropicBatches
from modelforge.batch._api import ApiJob
from modelforge.batch._backend import BatchBackend, ControlCalls, NoBatchApi, Shape
from modelforge.batch._jobs import (
    JobState,
    check_job_id,
    drop_job,
    encode_input,
    fingerprint,
    load_job,
    new_job_id,
    prune_finished,
)
from modelforge.batch._live import BatchProcessor
from modelforge.batch._openai_api import OpenAIBatches
from modelforge.batch._results import BatchResult, ProgressCallback
from modelforge.delegating import innermost
from modelforge.exceptions import ConfigurationError, InvalidInputError
from modelforge.providers import get_family
from modelforge.providers._managed import ManagedChatModel, managed_of
from modelforge.sections.batch import API_FAMILIES, BatchConfig, UseBatchApi

__all__ = ["batch_invoke", "batch_settings", "resume_batch"]

logger = logging.getLogger(__name__)


async def batch_invoke(
    registry: Any,
    prompts: Sequence[Any],
    *,
    provider_name: str | None = None,
    model_alias: str | None = None,
    max_concurrent: int | None = None,
    use_batch_api: UseBatchApi | None = None,
    on_progress: ProgressCallback | None = None,
    urgent: bool = False,
    job_id: str | None = None,
    poll_interval: float | None = None,
    max_wait: float | None = None,
    **kwargs: Any,
) -> list[BatchResult]:
    """Answer every prompt, in input order: one ``BatchResult`` (answer or error) per prompt.

    ``kwargs`` go to every call (``max_tokens=...``, ``stop=[...]``). ``urgent``, ``job_id``,
    ``poll_interval`` and ``max_wait`` concern the batch API path (see the module docstring).
    """
    if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence):
        raise InvalidInputError(
            f"prompts must be a list of inputs, not {type(prompts).__name__}",
            suggestion="Wrap a single prompt in a list: batch_invoke([prompt]).",
        )
    if max_concurrent is not None and (
        isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
    ):
        raise InvalidInputError(
            f"max_concurrent must be a whole number >= 1 (or None for the provider's batch setting), "
            f"not {max_concurrent!r}",
            suggestion="Pass max_concurrent=8, say, or leave it out.",
        )
    items = list(prompts)
    llm = registry.get_llm(provider_name, model_alias)
    managed = managed_of(llm)
    # With fallbacks there is no single managed model; the chain reads its first model's provider through.
    provider = (
        managed.forge.provider_name if managed is not None else getattr(llm, "provider_name", provider_name)
    )
    config = batch_settings(registry, provider)
    if use_batch_api is None:
        use_batch_api = config.use_batch_api
    use_api = _use_api(use_batch_api, managed, provider, len(items), config, urgent=urgent)
    if not items:
        return []
    if use_api:
        assert managed is not None
        try:
            return await _run_api(
                managed,
                llm,
                items,
                config,
                kwargs,
                on_progress=on_progress,
                job_id=job_id,
                poll_interval=config.poll_interval if poll_interval is None else poll_interval,
                max_wait=config.max_wait if max_wait is None else max_wait,
            )
        except NoBatchApi as err:
            if use_batch_api is True:
                raise
            logger.warning("%s; sending the batch of %d live instead", err, len(items))
    concurrency = max_concurrent if max_concurrent is not None else config.max_concurrent
    return await BatchProcessor(llm, max_concurrent=concurrency, on_progress=on_progress).run(items, **kwargs)


async def resume_batch(
    registry: Any,
    job_id: str,
    *,
    on_progress: ProgressCallback | None = None,
    poll_interval: float | None = None,
    max_wait: float | None = None,
) -> list[BatchResult]:
    """Wait for (or collect) the batch API job ``job_id``, which any process may have submitted."""
    state = load_job(check_job_id(job_id))
    if state is None:
        raise InvalidInputError(
            f"No batch job '{job_id}' was found on this machine",
            suggestion="Check the id (it is in every BatchProgress of the batch, and in the INFO log).",
        )
    llm = registry.get_llm(state.provider, state.model_alias)
    managed = managed_of(llm)
    if managed is None or managed.forge.llm_type != state.llm_type:
        raise ConfigurationError(
            f"Batch job '{job_id}' ran on provider '{state.provider}' ({state.llm_type}), which the config "
            "no longer describes the same way",
            provider=state.provider,
            suggestion="Restore the provider's settings to collect the job.",
        )
    config = batch_settings(registry, state.provider)
    job = ApiJob(_backend(managed, llm, config), state)
    await job.resume_submission()
    return await job.wait(
        on_progress=on_progress,
        poll_interval=config.poll_interval if poll_interval is None else poll_interval,
        max_wait=config.max_wait if max_wait is None else max_wait,
    )


# -- choosing ---------------------------------------------------------------------------------------------


def batch_settings(registry: Any, provider: str | None) -> BatchConfig:
    """The ``batch`` section of ``provider`` in ``registry``'s config (``ConfigurationError`` when it is
    invalid); ``max_tokens_per_job`` defaults to the provider's ``rate_limit.tokens_per_minute``."""
    settings = registry.get_configured_providers().get(provider, {}) if provider else {}
    section = settings.get("batch")
    try:
        config = BatchConfig.from_config(section)
    except ValueError as err:
        raise ConfigurationError(
            f"Provider '{provider}' has an invalid batch section: {err}",
            provider=provider,
            error_code="CONFIG_VALIDATION_ERROR",
            suggestion="Fix the batch section of the provider in the config file.",
        ) from err
    if config.max_tokens_per_job is None:
        rate_limit = settings.get("rate_limit")
        tpm = rate_limit.get("tokens_per_minute") if isinstance(rate_limit, dict) else None
        if isinstance(tpm, int) and not isinstance(tpm, bool) and tpm > 0:
            config = dataclasses.replace(config, max_tokens_per_job=tpm)
    return config


def _use_api(
    choice: UseBatchApi,
    managed: ManagedChatModel | None,
    provider: str | None,
    count: int,
    config: BatchConfig,
    *,
    urgent: bool,
) -> bool:
    if choice not in (True, False, "auto"):
        raise InvalidInputError(f"use_batch_api must be True, False, 'auto' or None, not {choice!r}")
    if choice is False:
        return False
    has_api = managed is not None and managed.forge.llm_type in API_FAMILIES
    if choice == "auto":
        return has_api and not urgent and count >= config.min_batch_api_items
    if not has_api:
        families = ", ".join(f"{name} ({api})" for name, api in API_FAMILIES.items())
        what = (
            f"provider '{provider}' ({managed.forge.llm_type})"
            if managed is not None
            else f"the model of '{provider}' (it has fallbacks or no single provider)"
        )
        raise ConfigurationError(
            f"use_batch_api=True, but {what} has no batch API",
            provider=provider,
            error_code="BATCH_API_UNAVAILABLE",
            suggestion=f"A batch API exists for: {families}. Send this batch live (use_batch_api=False).",
        )
    return True


# -- the batch API path -----------------------------------------------------------------------------------


def _backend(managed: ManagedChatModel, llm: BaseChatModel, config: BatchConfig) -> BatchBackend:
    family = get_family(managed.forge.llm_type, provider=managed.forge.provider_name)
    control = ControlCalls(
        family,
        provider=managed.forge.provider_name,
        model=managed.model_id or managed.forge.model_alias,
        retry={**family.retry_defaults, **managed.forge.retry},
    )
    model = innermost(llm)
    shape = _shaper(llm)
    if managed.forge.llm_type == "anthropic":
        return AnthropicBatches(model, control, shape=shape)
    return OpenAIBatches(model, control, completion_window=config.completion_window, shape=shape)


def _shaper(llm: BaseChatModel) -> Shape:
    """The provider optimizer's batch step for ``llm`` (unchanged bodies when it has no optimizer)."""
    try:
        from modelforge.optimizers import prepare_batch_body
    except ImportError:  # pragma: no cover - the optimizers ship with the package
        return dict

    def shape(body: dict[str, Any]) -> dict[str, Any]:
        return prepare_batch_body(llm, body)

    return shape


async def _run_api(
    managed: ManagedChatModel,
    llm: BaseChatModel,
    items: list[Any],
    config: BatchConfig,
    kwargs: dict[str, Any],
    *,
    on_progress: ProgressCallback | None,
    job_id: str | None,
    poll_interval: float,
    max_wait: float | None,
) -> list[BatchResult]:
    encoded = [encode_input(item) for item in items]
    digest = fingerprint(encoded, kwargs)
    backend = _backend(managed, llm, config)
    if job_id is not None:
        saved = load_job(check_job_id(job_id))
        if saved is not None:
            if saved.fingerprint != digest or saved.provider != managed.forge.provider_name:
                raise InvalidInputError(
                    f"Batch job id '{job_id}' is already used by another batch",
                    suggestion="Choose another job_id, or collect that job with resume_batch.",
                )
            logger.info("Batch job %s exists: collecting it instead of submitting again", job_id)
            existing = ApiJob(backend, saved)
            await existing.resume_submission()
            return await existing.wait(
                on_progress=on_progress, poll_interval=poll_interval, max_wait=max_wait
            )
    await asyncio.to_thread(prune_finished)
    state = JobState(
        job_id=job_id or new_job_id(),
        provider=managed.forge.provider_name,
        model_alias=managed.forge.model_alias,
        llm_type=managed.forge.llm_type,
        count=len(items),
        fingerprint=digest,
        inputs=encoded,
    )
    job = ApiJob(backend, state)
    job.prepare(items, kwargs, config.limits(managed.forge.llm_type))
    try:
        await job.submit(on_progress)
    except NoBatchApi:
        await asyncio.to_thread(drop_job, state.job_id)
        raise
    return await job.wait(on_progress=on_progress, poll_interval=poll_interval, max_wait=max_wait)
