"""What a file really is (sniffed from its bytes), and photos made safe to keep.

Everything here is CPU work on bytes; callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import io
import struct
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
    # The size the header declares is checked before any decoder sees the bytes: a few
    # hundred bytes can declare an image that would take gigabytes to decode.
    declared = declared_size(raw, sniffed)
    if declared is None:
        raise ImageRefused("upload.image_unreadable", error="no image size in the header")
    _check_pixels(*declared, max_pixels=max_pixels)
    if sniffed == "image/heic":
        _register_heif()
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            fmt = probe.format
            w, h = probe.size
    except Image.DecompressionBombError:
        raise ImageRefused("upload.image_too_large", pixels="?", limit=max_pixels) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageRefused("upload.image_unreadable", error=str(e)[:100]) from None
    _check_pixels(w, h, max_pixels=max_pixels)  # what the decoder found, in case it differs
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError:
        raise ImageRefused("upload.image_too_large", pixels=w * h, limit=max_pixels) from None
    except (OSError, ValueError, SyntaxError) as e:
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


def _check_pixels(width: int, height: int, *, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageRefused("upload.image_too_large", pixels=width * height, limit=max_pixels)


def declared_size(raw: bytes, sniffed: str) -> tuple[int, int] | None:
    """(width, height) as the file's header declares it, read without decoding anything.

    PNG: the IHDR chunk. JPEG: the first frame header (SOF), walking the segments by their
    lengths. HEIC: the largest image spatial extent (ispe) property, which covers a grid
    image's full size. None if the header has no size (the file is then unreadable).
    """
    if sniffed == "image/png":
        return _png_size(raw)
    if sniffed == "image/jpeg":
        return _jpeg_size(raw)
    if sniffed == "image/heic":
        return _heic_size(raw)
    return None


def _png_size(raw: bytes) -> tuple[int, int] | None:
    if len(raw) < 24 or raw[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", raw[16:24])
    return (w, h) if w and h else None


# Start-of-frame markers: every SOFn except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    at, end = 2, len(raw)
    while at + 4 <= end:
        if raw[at] != 0xFF:  # junk between segments: skipped, as decoders do
            at = raw.find(b"\xff", at)
            if at < 0:
                return None
            continue
        marker = raw[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length follows
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", raw[at + 2 : at + 4])
        if length < 2:
            return None
        if marker in _SOF:
            if at + 9 > end:
                return None
            h, w = struct.unpack(">HH", raw[at + 5 : at + 9])
            return (w, h) if w and h else None  # a height of 0 (set later by DNL): refused
        at += 2 + length
    return None


_HEIF_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0}  # box type -> bytes before children


def _heic_size(raw: bytes) -> tuple[int, int] | None:
    sizes: list[tuple[int, int]] = []

    def walk(start: int, end: int, depth: int) -> None:
        at = start
        while at + 8 <= end and depth < 8:
            size, kind = struct.unpack(">I4s", raw[at : at + 8])
            header = 8
            if size == 1:
                if at + 16 > end:
                    return
                (size,) = struct.unpack(">Q", raw[at + 8 : at + 16])
                header = 16
            elif size == 0:
                size = end - at
            if size < header or at + size > end:
                return
            if kind in _HEIF_CONTAINERS:
                walk(at + header + _HEIF_CONTAINERS[kind], at + size, depth + 1)
            elif kind == b"ispe" and size >= header + 12:
                w, h = struct.unpack(">II", raw[at + header + 4 : at + header + 12])
                sizes.append((w, h))
            at += size

    walk(0, len(raw), 0)
    if not sizes or any(w == 0 or h == 0 for w, h in sizes):
        return None
    return max(sizes, key=lambda s: s[0] * s[1])


def _register_heif() -> None:
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - pillow-heif is a dependency
        raise ImageRefused("upload.type_not_allowed", found="image/heic") from None
    pillow_heif.register_heif_opener()
