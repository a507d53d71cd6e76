"""Safe file writes: atomic replace under an inter-process lock, with owner-only permissions.

A write goes to a temporary file in the same directory, is flushed to disk, then renamed over the target,
so a reader sees the old file or the new one and never half of either; an interrupted write leaves the old
file untouched. ``locked`` serialises read-modify-write cycles between processes through a ``.lock`` file.
``set_aside`` keeps an owner-only copy of a file that cannot be parsed before anything writes over it (the
config files and the credentials file both use it).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from modelforge.exceptions import ConfigurationError

__all__ = ["AtomicFile", "atomic_write_text", "ensure_private_dir", "locked", "set_aside"]

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 15.0


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (mode 0700 when new) or explain why it cannot be created."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise _unwritable(directory, err) from err


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the inter-process lock that guards ``path`` while the block runs."""
    ensure_private_dir(path.parent)
    lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS)
    try:
        with lock:
            yield
    except Timeout as err:
        raise ConfigurationError(
            f"Another process holds the lock on {path} (waited {LOCK_TIMEOUT_SECONDS:g}s)",
            suggestion=f"Wait for it to finish, or remove {path}.lock if no ModelForge process is running.",
        ) from err
    except PermissionError as err:
        raise _unwritable(path.parent, err) from err


class AtomicFile:
    """A temporary file beside ``path`` that replaces it in one step on ``commit()``.

    Until then ``path`` is untouched; ``discard()`` (or any failure) removes the temporary file, so a
    half-written file never takes the target's place. ``mode`` is the new file's permission bits; None keeps
    those of the file being replaced (0644 for a new one). Raises ``OSError``; callers name the problem.
    """

    def __init__(self, path: Path, *, mode: int | None = 0o600, suffix: str = ".tmp") -> None:
        self.path = path
        self._mode = mode
        fd, self._temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def write(self, text: str) -> None:
        self.handle.write(text)

    def commit(self) -> None:
        """Flush to disk and rename over the target (then sync the directory entry)."""
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        finally:
            self.handle.close()
        mode = self._mode
        if mode is None:
            try:
                mode = stat.S_IMODE(self.path.stat().st_mode)
            except OSError:
                mode = 0o644
        os.chmod(self._temp, mode)
        os.replace(self._temp, self.path)
        _fsync_dir(self.path.parent)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            os.unlink(self._temp)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` atomically; the file gets ``mode`` (owner-only by default)."""
    ensure_private_dir(path.parent)
    try:
        target = AtomicFile(path, mode=mode)
    except OSError as err:
        raise _unwritable(path.parent, err) from err
    try:
        target.write(text)
        target.commit()
    except OSError as err:
        target.discard()
        raise _unwritable(path.parent, err) from err
    except BaseException:
        target.discard()
        raise


def set_aside(path: Path, *, reason: str) -> Path:
    """Copy ``path`` to ``<name>.corrupt-<timestamp>`` (mode 0600, never replacing an earlier copy), log
    one warning and print it to stderr; return the copy's path.

    The original stays where it is, so the caller decides what happens to it (usually an atomic write
    replaces it right after). ``reason`` says what is wrong and must not quote the content (it may hold
    secrets).
    """
    try:
        content = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(
            f"Cannot read {path}: {os.strerror(err.errno) if err.errno else err}",
            suggestion=f"Check the owner and permissions of {path}.",
            details={"path": str(path)},
        ) from err
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        backup, fd = _create_new(path.with_name(f"{path.name}.corrupt-{stamp}"))
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask says
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise _unwritable(path.parent, err) from err
    logger.warning("%s could not be read (%s); kept a copy at %s", path, reason, backup)
    print(f"Warning: {path} could not be read ({reason}); a copy was kept at {backup}", file=sys.stderr)
    return backup


def _create_new(base: Path) -> tuple[Path, int]:
    """Create ``base`` (or ``base-1``, ``base-2`` ... if taken) exclusively, mode 0600; the path and fd."""
    for n in range(1000):
        candidate = base.with_name(f"{base.name}-{n}") if n else base
        try:
            return candidate, os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "No free name for a copy", str(base))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _unwritable(directory: Path, err: OSError) -> ConfigurationError:
    reason = os.strerror(err.errno) if err.errno else str(err)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"Make {directory} writable by this user, or point HOME (or --local) somewhere writable."
    elif err.errno == errno.ENOSPC:
        hint = "Free some disk space and try again."
    else:
        hint = f"Check that {directory} is a writable directory."
    return ConfigurationError(
        f"Cannot write to {directory}: {reason}", suggestion=hint, details={"path": str(directory)}
    )
