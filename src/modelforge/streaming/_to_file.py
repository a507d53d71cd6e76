"""``stream_to_file``: write a streamed answer to a file that exists only once the answer is complete.

Pieces are written as they arrive to a temporary file beside the target (``.<name>.<random>.part``); when
the stream ends normally the file is flushed, synced and renamed over the target in one step. On any
failure or cancellation the temporary file is removed and the target is left as it was (absent, or its
previous content), so a cut-off answer never poses as a complete one. Missing parent directories are
created. The new file keeps the mode of the file it replaces, or gets 0644.
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
        target = AtomicFile(path, mode=None, suffix=".part")  # keeps the replaced file's mode
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
            target.discard()
    return written
