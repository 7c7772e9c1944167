"""The limits on a prompt's images and attachments: pure checks, each error saying what to fix."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from app.errors import (
    ImageInvalid,
    ImageTooLarge,
    ImageTypeUnsupported,
    InvalidInput,
    PayloadTooLarge,
    TooManyImages,
)
from app.paseo.media import PromptImage, PromptMedia, TextAttachment
from app.services.prompt_media import (
    ImageLimits,
    base64_length,
    check_attachments,
    check_first_media,
    check_images,
    image_body_bytes,
    image_from_url,
    media_digest,
    media_summary,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)
SMALL = ImageLimits(max_images=2, max_image_bytes=100, max_total_bytes=150)


@dataclass(frozen=True)
class Image:
    media_type: str
    data: str


@dataclass(frozen=True)
class Attachment:
    text: str
    title: str | None = None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_allowed_images_are_decoded() -> None:
    images = check_images([Image("image/png", b64(PNG)), Image("IMAGE/JPG", b64(b"jpeg"))])
    assert images == (PromptImage("image/png", PNG), PromptImage("image/jpeg", b"jpeg"))


def test_line_breaks_in_base64_are_allowed() -> None:
    wrapped = "\n".join(b64(PNG)[i : i + 20] for i in range(0, len(b64(PNG)), 20))
    assert check_images([Image("image/png", wrapped)])[0].data == PNG


@pytest.mark.parametrize("media_type", ["image/svg+xml", "image/bmp", "text/plain", ""])
def test_other_types_are_415(media_type: str) -> None:
    with pytest.raises(ImageTypeUnsupported) as caught:
        check_images([Image(media_type, b64(PNG))])
    assert caught.value.status == 415
    assert "images[0].media_type" in caught.value.detail
    assert "image/png, image/jpeg, image/gif, image/webp" in caught.value.detail


@pytest.mark.parametrize(
    "data",
    ["", "not base64!", "abc", "data:image/png;base64,AAAA", "-_-_", "AAAA===="],
)
def test_bad_base64_is_422(data: str) -> None:
    with pytest.raises(ImageInvalid) as caught:
        check_images([Image("image/png", data)])
    assert caught.value.status == 422 and caught.value.code == "image_invalid"
    assert "images[0].data" in caught.value.detail


def test_an_image_over_the_limit_is_413() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        check_images([Image("image/png", b64(b"x" * 101))], SMALL)
    assert caught.value.status == 413 and "100 bytes" in caught.value.detail
    check_images([Image("image/png", b64(b"x" * 100))], SMALL)


def test_a_huge_text_is_refused_before_it_is_decoded() -> None:
    huge = "A" * (base64_length(SMALL.max_image_bytes) + 4)
    with pytest.raises(ImageTooLarge):
        check_images([Image("image/png", huge)], SMALL)


def test_too_many_images_are_413() -> None:
    with pytest.raises(TooManyImages) as caught:
        check_images([Image("image/png", b64(b"x"))] * 3, SMALL)
    assert caught.value.status == 413 and "at most 2 images" in caught.value.detail


def test_images_over_the_total_are_413() -> None:
    with pytest.raises(TooManyImages) as caught:
        check_images([Image("image/png", b64(b"x" * 80))] * 2, SMALL)
    assert "150 bytes together" in caught.value.detail


def test_the_body_limit_makes_room_for_the_most_images() -> None:
    most = [Image("image/png", b64(b"x" * 75))] * 2
    body = sum(len(image.data) + 64 for image in most)
    assert body <= image_body_bytes(SMALL)


def test_data_urls() -> None:
    image = image_from_url(f"data:image/png;base64,{b64(PNG)}", "url")
    assert (image.media_type, image.data) == ("image/png", b64(PNG))
    with_params = image_from_url("data:image/webp;name=a.webp;base64,AAAA", "url")
    assert with_params.media_type == "image/webp"


@pytest.mark.parametrize("url", ["https://example.com/a.png", "HTTP://example.com/a.png"])
def test_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ImageInvalid) as caught:
        image_from_url(url, "messages[0].content[1].image_url.url")
    assert "does not fetch" in caught.value.detail and caught.value.status == 422


@pytest.mark.parametrize("url", ["data:image/png,rawbytes", "file:///etc/passwd", "AAAA"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ImageInvalid, match="not a base64 data URL"):
        image_from_url(url, "url")


def test_attachments_count_with_the_prompt() -> None:
    assert check_attachments([Attachment("abc", "a.txt")], "p", 10) == (
        TextAttachment("abc", "a.txt"),
    )
    with pytest.raises(PayloadTooLarge, match="together"):
        check_attachments([Attachment("x" * 8)], "prompt", 10)
    with pytest.raises(InvalidInput, match="at most 16 attachments"):
        check_attachments([Attachment("x")] * 17, "p", 1000)


def test_media_needs_a_first_prompt() -> None:
    with pytest.raises(InvalidInput, match="go with a prompt"):
        check_first_media(None, [Image("image/png", b64(PNG))], [], 100)
    assert check_first_media(None, [], [], 100) == PromptMedia()


def test_digest_and_summary() -> None:
    assert media_digest(PromptMedia()) == "" and media_summary(PromptMedia()) == {}
    one = PromptMedia(images=(PromptImage("image/png", PNG),))
    other = PromptMedia(images=(PromptImage("image/png", PNG + b"x"),))
    assert media_digest(one) != media_digest(other)
    both = PromptMedia(images=one.images, attachments=(TextAttachment("héllo", "t"),))
    assert media_summary(both) == {
        "images": [{"media_type": "image/png", "bytes": len(PNG)}],
        "attachments": [{"title": "t", "bytes": 6}],
    }
