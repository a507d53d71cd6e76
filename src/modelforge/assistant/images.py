"""Images for chat messages: URLs, data URLs and image files as LangChain image content blocks.

``image_blocks(["https://...", "data:image/png;base64,...", Path("cat.jpg")])`` gives standard LangChain
blocks (``{"type": "image", "url" | "base64": ..., "mime_type": ...}``), which each provider's LangChain SDK
turns into its own wire format (OpenAI ``image_url``, Anthropic ``image`` sources, Ollama ``images``,
Gemini ``inline_data``). ``with_images(messages, images)`` attaches them to the last user message.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from modelforge.exceptions import FileValidationError, InvalidInputError

__all__ = ["ImageSource", "image_blocks", "with_images"]

ImageSource = str | Path


def image_blocks(images: Sequence[ImageSource]) -> list[dict[str, Any]]:
    """LangChain image content blocks for URLs, data URLs and image files."""
    blocks: list[dict[str, Any]] = []
    for image in images:
        if not isinstance(image, str | Path):
            raise InvalidInputError(
                f"An image must be a URL, a data URL or a file path, got {type(image).__name__}",
                suggestion="Pass an http(s) URL, a data:image/... URL, or the path of a .png or .jpg file "
                "(encode raw bytes as data:image/png;base64,...).",
            )
        text = str(image)
        if isinstance(image, str) and text.startswith(("http://", "https://")):
            blocks.append({"type": "image", "url": text})
            continue
        if isinstance(image, str) and text.startswith("data:"):
            blocks.append(data_url_block(text))
            continue
        path = Path(image)
        mime = mimetypes.guess_type(path.name)[0]
        if mime is None or not mime.startswith("image/"):
            raise InvalidInputError(
                f"{path.name!r} is not an image URL, data URL or image file",
                suggestion="Pass an http(s) URL, a data:image/... URL, or the path of a .png or .jpg file.",
            )
        try:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError as err:
            raise FileValidationError(str(path), f"cannot be read ({err.strerror or err})") from err
        blocks.append({"type": "image", "base64": data, "mime_type": mime})
    return blocks


def data_url_block(url: str) -> dict[str, Any]:
    header, sep, data = url.partition(",")
    mime = header[len("data:") :].removesuffix(";base64")
    if not sep or not header.endswith(";base64") or not mime.startswith("image/"):
        raise InvalidInputError(
            "An image data URL must look like data:image/<type>;base64,<data>",
            suggestion="Encode the image in base64 with its image/... MIME type, or pass its file path.",
        )
    return {"type": "image", "base64": data, "mime_type": mime}


def with_images(messages: Sequence[BaseMessage], images: Sequence[ImageSource]) -> list[BaseMessage]:
    """``messages`` with ``images`` added to the last user message (which must exist)."""
    if isinstance(images, str | Path):
        images = [images]
    blocks = image_blocks(images)
    result = list(messages)
    for index in range(len(result) - 1, -1, -1):
        message = result[index]
        if isinstance(message, HumanMessage):
            content = message.content
            parts: list[Any] = (
                [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            )
            result[index] = message.model_copy(update={"content": [*parts, *blocks]})
            return result
    raise InvalidInputError(
        "images need a user message to go with",
        suggestion="Add a user message (a question about the images) to the messages.",
    )
