"""The limits on what a prompt carries besides its text, checked before anything is stored.

Pure functions: they take what the client sent (base64 text, data URLs, attachment texts) and
return the decoded `PromptMedia`, or raise the error that says what to fix: 413 too large or
too many, 415 a type not allowed, 422 not base64 or not a data URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.errors import (
    ImageInvalid,
    ImageTooLarge,
    ImageTypeUnsupported,
    InvalidInput,
    PayloadTooLarge,
    TooManyImages,
)
from app.paseo.media import IMAGE_EXTENSIONS, PromptImage, PromptMedia, TextAttachment

MiB = 1024 * 1024
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 5 * MiB  # decoded, each
MAX_IMAGES_TOTAL_BYTES = 20 * MiB  # decoded, all of one prompt's images together
MAX_ATTACHMENTS = 16
ALLOWED_IMAGE_TYPES = tuple(IMAGE_EXTENSIONS)
# JSON room for one image besides its base64 text (`{"data": "", "media_type": ...}`, or a
# data URL's `data:image/webp;base64,` and its `image_url` part).
IMAGE_JSON_OVERHEAD_BYTES = 256
_DATA_URL = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*?);base64,(.*)$", re.DOTALL)
_BASE64_TEXT = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


class ImageInput(Protocol):
    """An image as a client sends it: a media type and base64 text."""

    @property
    def media_type(self) -> str: ...

    @property
    def data(self) -> str: ...


class AttachmentInput(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def title(self) -> str | None: ...


@dataclass(frozen=True)
class ImageLimits:
    max_images: int = MAX_IMAGES
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_total_bytes: int = MAX_IMAGES_TOTAL_BYTES


@dataclass(frozen=True)
class DataUrlImage:
    """An image taken out of a `data:` URL."""

    media_type: str
    data: str


DEFAULT_LIMITS = ImageLimits()


def base64_length(size: int) -> int:
    """How many base64 characters `size` bytes take (padded)."""
    return 4 * ((size + 2) // 3)


def image_body_bytes(limits: ImageLimits = DEFAULT_LIMITS) -> int:
    """How much room a request body needs for the most images a prompt may carry."""
    return base64_length(limits.max_total_bytes) + limits.max_images * IMAGE_JSON_OVERHEAD_BYTES


def check_images(
    images: Sequence[ImageInput], limits: ImageLimits = DEFAULT_LIMITS, *, field: str = "images"
) -> tuple[PromptImage, ...]:
    """The images decoded, if each is an allowed type, valid base64, and within the limits."""
    if len(images) > limits.max_images:
        raise TooManyImages(
            f"a prompt may carry at most {limits.max_images} images, not {len(images)}; send fewer",
            field=field,
        )
    decoded: list[PromptImage] = []
    total = 0
    for index, image in enumerate(images):
        where = f"{field}[{index}]"
        decoded.append(_check_image(image, limits, where))
        total += len(decoded[-1].data)
        if total > limits.max_total_bytes:
            raise TooManyImages(
                f"a prompt's images may be at most {limits.max_total_bytes} bytes together "
                f"(decoded); {where} brings them to {total}: send fewer or smaller images",
                field=field,
            )
    return tuple(decoded)


def _check_image(image: ImageInput, limits: ImageLimits, where: str) -> PromptImage:
    media_type = image.media_type.strip().lower()
    if media_type == "image/jpg":
        media_type = "image/jpeg"
    if media_type not in IMAGE_EXTENSIONS:
        allowed = ", ".join(ALLOWED_IMAGE_TYPES)
        raise ImageTypeUnsupported(
            f"{where}.media_type is {image.media_type!r}; allowed: {allowed}",
            field=f"{where}.media_type",
        )
    if len(image.data) > base64_length(limits.max_image_bytes):
        raise ImageTooLarge(
            f"{where} is over {limits.max_image_bytes} bytes (decoded); send a smaller image",
            field=f"{where}.data",
        )
    data = _decode(image.data, where)
    if len(data) > limits.max_image_bytes:
        raise ImageTooLarge(
            f"{where} is {len(data)} bytes (decoded); the limit is {limits.max_image_bytes} "
            "bytes: send a smaller image",
            field=f"{where}.data",
        )
    return PromptImage(media_type, data)


def _decode(text: str, where: str) -> bytes:
    """Standard base64, padded; whitespace (line breaks) is left out first."""
    compact = "".join(text.split())
    if not compact or len(compact) % 4 or not _BASE64_TEXT.match(compact):
        raise ImageInvalid(
            f"{where}.data is not base64 (standard alphabet, padded with `=`): send the "
            "image's bytes base64-encoded, without a `data:` prefix",
            field=f"{where}.data",
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInvalid(f"{where}.data is not valid base64", field=f"{where}.data") from None


def image_from_url(url: str, where: str) -> DataUrlImage:
    """An OpenAI `image_url` part's URL, which must be a base64 `data:` URL: the gateway
    fetches nothing."""
    if re.match(r"^https?://", url, re.IGNORECASE):
        raise ImageInvalid(
            f"{where} is an http(s) URL; the gateway does not fetch images: send the image "
            "inline as a data URL (data:image/png;base64,...)",
            field=where,
        )
    match = _DATA_URL.match(url)
    if match is None:
        raise ImageInvalid(
            f"{where} is not a base64 data URL; send data:<media type>;base64,<data>",
            field=where,
        )
    return DataUrlImage(media_type=match.group(1), data=match.group(3))


def check_attachments(
    attachments: Sequence[AttachmentInput], prompt: str, max_text_bytes: int
) -> tuple[TextAttachment, ...]:
    """Text attachments: at most MAX_ATTACHMENTS, and with the prompt at most
    `max_text_bytes` of UTF-8 together."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(
            f"a prompt may carry at most {MAX_ATTACHMENTS} attachments, not {len(attachments)}",
            field="attachments",
        )
    total = len(prompt.encode("utf-8")) + sum(len(a.text.encode("utf-8")) for a in attachments)
    if attachments and total > max_text_bytes:
        raise PayloadTooLarge(
            f"the prompt and its attachments are {total} bytes together; the limit is "
            f"{max_text_bytes} (PASEO_GATEWAY_MAX_PROMPT_BYTES)",
            field="attachments",
        )
    return tuple(TextAttachment(text=a.text, title=a.title) for a in attachments)


def check_media(
    prompt: str,
    images: Sequence[ImageInput],
    attachments: Sequence[AttachmentInput],
    max_text_bytes: int,
) -> PromptMedia:
    """What a prompt carries besides its text, checked (see `check_images`,
    `check_attachments`)."""
    return PromptMedia(
        images=check_images(images),
        attachments=check_attachments(attachments, prompt, max_text_bytes),
    )


def check_first_media(
    prompt: str | None,
    images: Sequence[ImageInput],
    attachments: Sequence[AttachmentInput],
    max_text_bytes: int,
) -> PromptMedia:
    """A new session's: they go with its first prompt, so there is none without one."""
    if prompt is None:
        if images or attachments:
            raise InvalidInput(
                "images and attachments go with a prompt: add `prompt`, or send them later "
                "with POST /sessions/{id}/prompt",
                field="images" if images else "attachments",
            )
        return PromptMedia()
    return check_media(prompt, images, attachments, max_text_bytes)


def media_digest(media: PromptMedia) -> str:
    """What an Idempotency-Key retry must repeat besides the text ('' for a prompt without)."""
    if not media:
        return ""
    digest = hashlib.sha256()
    for image in media.images:
        digest.update(f"image\0{image.media_type}\0{len(image.data)}\0".encode())
        digest.update(image.data)
    for attachment in media.attachments:
        digest.update(f"text\0{attachment.title or ''}\0{len(attachment.text)}\0".encode())
        digest.update(attachment.text.encode("utf-8"))
    return digest.hexdigest()


def media_summary(media: PromptMedia) -> dict[str, object]:
    """What a turn's `turn.started` event says of them: types and sizes, never the bytes."""
    summary: dict[str, object] = {}
    if media.images:
        summary["images"] = [
            {"media_type": image.media_type, "bytes": len(image.data)} for image in media.images
        ]
    if media.attachments:
        summary["attachments"] = [
            {"title": item.title, "bytes": len(item.text.encode("utf-8"))}
            for item in media.attachments
        ]
    return summary
