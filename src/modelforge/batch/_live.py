"""Live batches: ``BatchProcessor`` answers many inputs with concurrent calls of one chat model.

Each input is one ``llm.ainvoke`` (``llm.invoke`` in a worker thread for ``run_sync``), at most
``max_concurrent`` at a time. With a model from ``ModelForgeRegistry.get_llm`` every call goes through the
provider's own policies: its ``rate_limit`` admission (requests and tokens per window, shared by every
caller of the provider) and its retry policy (the ``retry`` section's ``batch`` settings when it has
them). Results come back in input order, one per input: the answer, or the error that call ended with
(an ``Exception`` of one item never touches another). Cancellation and other ``BaseException``s are not
swallowed: they stop the batch and propagate. ``on_progress`` hears about every finished item.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable

from modelforge.batch._results import BatchProgress, BatchResult, ProgressCallback, anotify, notify
from modelforge.delegating import batching

__all__ = ["BatchProcessor"]


class _Tally:
    """Counts finished items and builds the progress reports."""

    __slots__ = ("clock", "failed", "started", "succeeded", "total")

    def __init__(self, total: int, clock: Callable[[], float]) -> None:
        self.total = total
        self.clock = clock
        self.started = clock()
        self.succeeded = 0
        self.failed = 0

    def record(self, result: BatchResult) -> BatchProgress:
        if result.ok:
            self.succeeded += 1
        else:
            self.failed += 1
        return BatchProgress(
            total=self.total,
            done=self.succeeded + self.failed,
            succeeded=self.succeeded,
            failed=self.failed,
            elapsed=self.clock() - self.started,
        )


def _result(index: int, item: Any, output: Any) -> BatchResult:
    if isinstance(output, AIMessage):
        return BatchResult(index, item, message=output)
    return BatchResult(index, item, output=output)


class BatchProcessor:
    """Concurrent calls of ``llm`` (any LangChain chat model or runnable), results in input order.

    ``BatchProcessor(llm, max_concurrent=8, on_progress=print)``; ``await processor.run(prompts)`` or
    ``processor.run_sync(prompts)``. ``kwargs`` of ``run`` go to every call (``stop=...``, ``tools=...``).
    ``on_progress`` gets a ``BatchProgress`` after every item (a coroutine function is awaited by ``run``).
    """

    def __init__(
        self,
        llm: Runnable[Any, Any],
        *,
        max_concurrent: int = 8,
        on_progress: ProgressCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a whole number >= 1, got {max_concurrent!r}")
        self.llm = llm
        self.max_concurrent = max_concurrent
        self.on_progress = on_progress
        self._clock = clock

    async def run(self, inputs: Sequence[Any], **kwargs: Any) -> list[BatchResult]:
        """Answer every input; one ``BatchResult`` per input, in input order."""
        items = list(inputs)
        results: list[BatchResult | None] = [None] * len(items)
        tally = _Tally(len(items), self._clock)
        queue = iter(range(len(items)))  # shared by the workers; next() never yields to the loop

        async def worker() -> None:
            for index in queue:
                try:
                    result = _result(index, items[index], await self.llm.ainvoke(items[index], **kwargs))
                except Exception as err:
                    result = BatchResult(index, items[index], error=err)
                results[index] = result
                await anotify(self.on_progress, tally.record(result))

        # Calls made under ``batching()`` follow the provider's ``retry.batch`` settings.
        with batching():
            async with asyncio.TaskGroup() as group:  # a BaseException in one worker cancels the rest
                for _ in range(min(self.max_concurrent, len(items))):
                    group.create_task(worker())
        return _complete(results)

    def run_sync(self, inputs: Sequence[Any], **kwargs: Any) -> list[BatchResult]:
        """``run`` for synchronous code: ``llm.invoke`` in ``max_concurrent`` worker threads.

        ``on_progress`` is called from this thread and must be a plain function.
        """
        if inspect.iscoroutinefunction(self.on_progress):
            raise TypeError("run_sync calls on_progress synchronously: pass a plain function (or use run)")
        items = list(inputs)
        results: list[BatchResult | None] = [None] * len(items)
        tally = _Tally(len(items), self._clock)

        def call(index: int) -> BatchResult:
            try:
                return _result(index, items[index], self.llm.invoke(items[index], **kwargs))
            except Exception as err:
                return BatchResult(index, items[index], error=err)

        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(self.max_concurrent, len(items))), thread_name_prefix="modelforge-batch"
        )
        try:
            with batching():
                # Each call runs in a copy of this context: it sees the batch flag (and any tracing context).
                futures = [
                    executor.submit(contextvars.copy_context().run, call, i) for i in range(len(items))
                ]
            for future in concurrent.futures.as_completed(futures):
                result = future.result()  # a BaseException raised by a call propagates from here
                results[result.index] = result
                pending = notify(self.on_progress, tally.record(result))
                if inspect.iscoroutine(pending):
                    pending.close()
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown(wait=True)
        return _complete(results)


def _complete(results: list[BatchResult | None]) -> list[BatchResult]:
    """The results, checked to be complete (a hole would be a defect here, never a silent gap)."""
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:  # pragma: no cover - every path above fills its slot or raises
        raise RuntimeError(f"batch lost items {missing[:10]}")
    return [r for r in results if r is not None]
