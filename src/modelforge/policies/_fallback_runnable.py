"""``FallbackRunnable``: any runnables tried in order, with a fallback chain's decisions and breakers.

``FallbackChatModel.with_structured_output`` builds one per chain: each member's own structured runnable
(so each provider uses its best method: JSON schema, tool calling...), run in order. ``invoke``/``ainvoke``
(and so ``batch``/``abatch``) move on exactly as the chat model does. A stream moves on only before its
first output reached the caller; after that the failure is raised (partial structured outputs cannot be
restarted in a way a consumer could tell).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field

from modelforge.policies._fallback_attempts import FallbackAttempts, breakers_of, should_fall_back
from modelforge.policies.circuit import CircuitBreakerRegistry

__all__ = ["FallbackRunnable"]


class FallbackRunnable(RunnableSerializable[Any, Any]):
    """``runnables`` tried in order; ``labels`` name them, ``breaker_names`` pick their circuit breakers."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    runnables: list[Runnable[Any, Any]] = Field(min_length=1)
    labels: list[str]
    breaker_names: list[str]
    use_circuit_breakers: bool = True
    circuit_breakers: CircuitBreakerRegistry | None = Field(default=None, exclude=True)
    should_fall_back: Callable[[BaseException], bool] = Field(default=should_fall_back, exclude=True)

    def _attempts(self) -> FallbackAttempts:
        breakers = breakers_of(
            self.breaker_names, enabled=self.use_circuit_breakers, registry=self.circuit_breakers
        )
        return FallbackAttempts(self.labels, breakers, self.should_fall_back)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        attempts = self._attempts()
        for index, runnable in enumerate(self.runnables):
            permit = attempts.admit(index)
            if permit is None:
                continue
            try:
                output = runnable.invoke(input, config, **kwargs)
            except Exception as err:
                if attempts.failed(index, permit, err):
                    continue
                raise
            except BaseException:
                permit.release()
                raise
            permit.succeeded()
            return output
        raise attempts.exhausted()

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        attempts = self._attempts()
        for index, runnable in enumerate(self.runnables):
            permit = attempts.admit(index)
            if permit is None:
                continue
            try:
                output = await runnable.ainvoke(input, config, **kwargs)
            except Exception as err:
                if attempts.failed(index, permit, err):
                    continue
                raise
            except BaseException:
                permit.release()
                raise
            permit.succeeded()
            return output
        raise attempts.exhausted()

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        attempts = self._attempts()
        for index, runnable in enumerate(self.runnables):
            permit = attempts.admit(index)
            if permit is None:
                continue
            delivered = False
            source = runnable.stream(input, config, **kwargs)
            try:
                for output in source:
                    delivered = True
                    yield output
                permit.succeeded()
            except Exception as err:
                if attempts.failed(index, permit, err) and not delivered:
                    continue
                raise
            finally:
                permit.release()
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            return
        raise attempts.exhausted()

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        attempts = self._attempts()
        for index, runnable in enumerate(self.runnables):
            permit = attempts.admit(index)
            if permit is None:
                continue
            delivered = False
            source = runnable.astream(input, config, **kwargs)
            try:
                async for output in source:
                    delivered = True
                    yield output
                permit.succeeded()
            except Exception as err:
                if attempts.failed(index, permit, err) and not delivered:
                    continue
                raise
            finally:
                permit.release()
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        raise attempts.exhausted()
