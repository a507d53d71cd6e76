"""``stream_to_file``: write a streamed answer to a file that exists only once the answer is complete.

Pieces are written as they arrive to a temporary file beside the target (``.<name>.<random>.part``); when
the stream ends normally the file is flushed, synced and renamed over the target in one step. On any
failure or cancellation the temporary file is removed and the target is left as it was (absent, or its
previous content), so a cut-off answer never poses as a complete one. Missing parent directories are
created. The new file keeps the mode of the file it replaces, or gets 0644.

File system calls that may block (creating the directories and the temporary file, the final flush, sync
and rename, removing the temporary file) run in worker threads, off the event loop. Each piece is written
inline: a buffered write of a small piece costs far less than a hand-over to a thread.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable

from modelforge._files import AtomicFile
from modelforge.exceptions import FileValidationError
from modelforge.streaming._wrapper import stream
from modelforge.validation import InputValidator

__all__ = ["stream_to_file"]


async def _create_part(path: Path) -> AtomicFile:
    """The temporary file, created in a worker thread; if we are cancelled meanwhile it is removed."""
    # mode=None: the new file keeps the mode of the file it replaces
    creating = asyncio.ensure_future(asyncio.to_thread(AtomicFile, path, mode=None, suffix=".part"))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:
        creating.add_done_callback(_discard_created)
        raise


def _discard_created(creating: asyncio.Future[AtomicFile]) -> None:
    if not creating.cancelled() and creating.exception() is None:
        creating.result().discard()


def _write_error(path: Path, err: OSError) -> FileValidationError:
    return FileValidationError(
        str(path),
        f"cannot write the answer ({err.strerror or err})",
        suggestion="Check the free space and permissions, or choose another file",
    )


async def stream_to_file(
    llm: Runnable[Any, Any],
    prompt: Any,
    filepath: str | os.PathLike[str],
    provider_name: str | None = None,
    provider_data: dict[str, Any] | None = None,
    **kwargs: Any,
) -> int:
    """Stream the answer into ``filepath`` atomically; returns the number of characters written.

    ``kwargs`` are those of ``StreamWrapper.stream`` (``timeout``, ``idle_timeout``, ``on_progress``, ...).
    Stream errors propagate unchanged after the temporary file is removed; a file that cannot be written
    raises ``FileValidationError``.
    """
    path = InputValidator.validate_file_path(filepath, must_be_writable=True)
    pieces = stream(llm, prompt, provider_name, provider_data, **kwargs)  # checks arguments before any I/O
    try:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        target = await _create_part(path)
    except OSError as err:
        await pieces.aclose()
        raise _write_error(path, err) from err

    published = False
    written = 0
    try:
        async with aclosing(pieces):
            async for piece in pieces:
                try:
                    target.write(piece)
                except OSError as err:
                    raise _write_error(path, err) from err
                written += len(piece)
        try:
            await asyncio.to_thread(target.commit)
        except OSError as err:
            raise _write_error(path, err) from err
        published = True
    finally:
        if not published:
            await asyncio.to_thread(target.discard)
    return written
