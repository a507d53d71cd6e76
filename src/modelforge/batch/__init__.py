"""Batches: many prompts answered concurrently within the provider's limits, or through its batch API.

::

    registry = ModelForgeRegistry(enable_optimizations=True)
    responses = await registry.batch_invoke(prompts)           # one BatchResult per prompt, in order
    for r in responses:
        print(r.content if r.ok else f"failed: {r.error}")

Live batches (the default) send each prompt as one call of the model ``get_llm`` builds, ``max_concurrent``
at a time (``BatchProcessor``; works with any LangChain chat model too). Every call goes through the
provider's ``rate_limit`` admission (RPM/TPM) and retry policy, so a batch never outruns the provider; an
item's failure is its own ``BatchResult.error`` and never costs another item; ``on_progress`` hears of
every finished item.

With ``use_batch_api=True`` (or ``"auto"`` for batches of at least ``min_batch_api_items``, unless
``urgent=True``) the batch goes through the provider's batch API — OpenAI's Batch API (a JSONL file, a
``/v1/batches`` job) or Anthropic's Message Batches — at the provider's batch prices, split into several
provider jobs when it exceeds their per-job limits. The job is saved under
``~/.cache/model-forge/batches/``; if the process dies, ``registry.resume_batch(job_id)`` collects it
from any process (``BatchProgress.job_id`` carries the id). Settings: the provider's ``batch`` section
(``BatchConfig``).

Public: ``BatchResult``, ``BatchProgress``, ``BatchProcessor``, ``BatchConfig``, ``batch_invoke``,
``resume_batch``, ``batch_settings``, ``validate_section``.
"""

from __future__ import annotations

from modelforge.batch._dispatch import batch_invoke, batch_settings, resume_batch
from modelforge.batch._live import BatchProcessor
from modelforge.batch._results import BatchProgress, BatchResult
from modelforge.sections.batch import BatchConfig, validate_section

__all__ = [
    "BatchConfig",
    "BatchProcessor",
    "BatchProgress",
    "BatchResult",
    "batch_invoke",
    "batch_settings",
    "resume_batch",
    "validate_section",
]
