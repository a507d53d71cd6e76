"""``stream_to_file``: write a streamed answer to a file that exists only once the answer is complete.

Pieces are written as they arrive to a temporary file beside the target (``.<name>.<random>.part``); when
the stream ends normally the file is flushed, synced and renamed over the target in one step. On any
failure or cancellation the temporary file is removed and the target is left as it was (absent, or its
previous content), so a cut-off answer never poses as a complete one. Missing parent directories are
created. The new file keeps the mode of the file it replaces, or gets 0644.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
from contextlib import aclosing
from pathlib import Path
from typing import IO, Any

from langchain_core.runnables import Runnable

from modelforge.exceptions import FileValidationError
from modelforge.streaming._wrapper import stream
from modelforge.validation import InputValidator

__all__ = ["stream_to_file"]

_NEW_FILE_MODE = 0o644


def _write_error(path: Path, err: OSError) -> FileValidationError:
    return FileValidationError(
        str(path),
        f"cannot write the answer ({err.strerror or err})",
        suggestion="Check the free space and permissions, or choose another file",
    )


def _sync_and_close(handle: IO[str]) -> None:
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()


def _publish(temp: str, path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = _NEW_FILE_MODE
    os.chmod(temp, mode)
    os.replace(temp, path)


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
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as err:
        await pieces.aclose()
        raise _write_error(path, err) from err

    handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
    published = False
    written = 0
    try:
        async with aclosing(pieces):
            async for piece in pieces:
                try:
                    handle.write(piece)
                except OSError as err:
                    raise _write_error(path, err) from err
                written += len(piece)
        try:
            await asyncio.to_thread(_sync_and_close, handle)
            await asyncio.to_thread(_publish, temp, path)
        except OSError as err:
            raise _write_error(path, err) from err
        published = True
    finally:
        if not published:
            with contextlib.suppress(OSError):
                handle.close()
            with contextlib.suppress(OSError):
                os.unlink(temp)
    return written
