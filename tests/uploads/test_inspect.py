"""Photos are measured from their headers before anything decodes them (decompression bombs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from tests.uploads.helpers import heic, heic_bomb, jpeg, jpeg_bomb, png, png_bomb
from uploads import inspect

LIMIT = 60_000_000
BOMBS: dict[str, Callable[[], bytes]] = {
    "image/png": png_bomb,
    "image/jpeg": jpeg_bomb,
    "image/heic": heic_bomb,
}


@pytest.mark.parametrize("content_type", sorted(BOMBS))
def test_a_header_declaring_too_many_pixels_is_refused_without_opening_the_image(
    content_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = BOMBS[content_type]()
    assert inspect.sniff(raw[: inspect.SNIFF_BYTES]) == content_type

    def no_decoding(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the image was opened before its declared size was checked")

    monkeypatch.setattr(Image, "open", no_decoding)
    with pytest.raises(inspect.ImageRefused) as refused:
        inspect.clean_image(raw, content_type, max_pixels=LIMIT, thumb_px=320)
    assert refused.value.code == "upload.image_too_large"
    assert refused.value.params == {"pixels": 20000 * 20000, "limit": LIMIT}


@pytest.mark.parametrize(
    ("content_type", "make", "size"),
    [
        ("image/png", lambda: png(300, 200), (300, 200)),
        ("image/jpeg", lambda: jpeg(640, 480, orientation=6), (640, 480)),
        ("image/heic", lambda: heic(320, 240), (320, 240)),
    ],
)
def test_the_declared_size_is_read_from_each_header(
    content_type: str, make: Callable[[], bytes], size: tuple[int, int]
) -> None:
    assert inspect.declared_size(make(), content_type) == size
    assert inspect.declared_size(BOMBS[content_type](), content_type) == (20000, 20000)


def test_a_header_with_no_size_is_unreadable() -> None:
    for content_type, raw in [
        ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20),
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9"),
        ("image/heic", heic()[:40]),
    ]:
        assert inspect.declared_size(raw, content_type) is None
        with pytest.raises(inspect.ImageRefused) as refused:
            inspect.clean_image(raw, content_type, max_pixels=LIMIT, thumb_px=320)
        assert refused.value.code == "upload.image_unreadable"
