"""What a prompt may carry besides its text: images, and text attachments (the daemon's).

The gateway checks them (app/services/prompt_media.py) before a turn is stored; the
transports only carry them: the daemon's `images` `[{data (base64), mimeType}]` and
`attachments` `[{type: "text", mimeType: "text/plain", title?, text}]` (every release from
0.1.65 has both), the CLI's `--image <path>` (no attachments).
"""

from __future__ import annotations

from dataclasses import dataclass

# The image types every transport carries, with the file extension the CLI reads the type
# from (`paseo send --image` names a file; the CLI takes its type from the extension).
IMAGE_EXTENSIONS: dict[str, str] = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
}


@dataclass(frozen=True)
class PromptImage:
    """An image sent with a prompt: its bytes (decoded) and their media type."""

    media_type: str
    data: bytes


@dataclass(frozen=True)
class TextAttachment:
    """Extra text handed to the agent with a prompt (Paseo's `text` attachment)."""

    text: str
    title: str | None = None


@dataclass(frozen=True)
class PromptMedia:
    """Everything a prompt carries besides its text (nothing, by default)."""

    images: tuple[PromptImage, ...] = ()
    attachments: tuple[TextAttachment, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.images or self.attachments)


NO_MEDIA = PromptMedia()
