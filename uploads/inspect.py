"""What a file really is (sniffed from its bytes), and photos made safe to keep.

Everything here is CPU work on bytes; callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/heic"})
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/heic": "heic",
    "application/pdf": "pdf",
    "video/webm": "webm",
    "video/mp2t": "ts",
}
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
SNIFF_BYTES = 512


def sniff(head: bytes) -> str:
    """The MIME type the first bytes show, or a description of what else they are."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "image/heic"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "video/webm"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if _looks_like_ts(head):
        return "video/mp2t"
    if head.startswith((b"MZ", b"\x7fELF", b"#!", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")):
        return "executable"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "unknown"


def _looks_like_ts(head: bytes) -> bool:
    # MPEG-TS: a sync byte (0x47) at the start of every 188-byte packet.
    return len(head) > 376 and head[0] == head[188] == head[376] == 0x47


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str
    thumbnail: bytes


class ImageRefused(Exception):
    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def clean_image(raw: bytes, sniffed: str, *, max_pixels: int, thumb_px: int) -> CleanImage:
    """Upright (EXIF orientation applied), with no EXIF, GPS or other metadata, plus a thumbnail.

    JPEG stays JPEG (re-encoded at high quality: Pillow cannot rotate losslessly), PNG stays
    PNG, and HEIC (iPad and phone cameras) becomes JPEG so every browser can show it.
    """
    if sniffed == "image/heic":
        _register_heif()
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            fmt = probe.format
            w, h = probe.size
    except (OSError, ValueError) as e:
        raise ImageRefused("upload.image_unreadable", error=str(e)[:100]) from None
    if w * h > max_pixels:
        raise ImageRefused("upload.image_too_large", pixels=w * h, limit=max_pixels)
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageRefused("upload.image_unreadable", error=str(e)[:100]) from None
    out = io.BytesIO()
    if fmt == "PNG":
        # A fresh image carries no text chunks, eXIf or ICC-embedded location.
        clean = Image.new(upright.mode, upright.size)
        clean.paste(upright)
        clean.save(out, format="PNG", optimize=False)
        content_type = "image/png"
    else:
        rgb = upright.convert("RGB")
        rgb.save(out, format="JPEG", quality=90, optimize=True, exif=b"")
        content_type = "image/jpeg"
    data = out.getvalue()
    thumb = upright.convert("RGB")
    thumb.thumbnail((thumb_px, thumb_px))
    tout = io.BytesIO()
    thumb.save(tout, format="JPEG", quality=80)
    return CleanImage(
        data=data,
        content_type=content_type,
        width=upright.width,
        height=upright.height,
        sha256=hashlib.sha256(data).hexdigest(),
        thumbnail=tout.getvalue(),
    )


def _register_heif() -> None:
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - pillow-heif is a dependency
        raise ImageRefused("upload.type_not_allowed", found="image/heic") from None
    pillow_heif.register_heif_opener()
