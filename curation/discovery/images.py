"""Checking an uploaded photo before anything looks at its pixels.

An upload is judged by its content, never by its name or declared type: the byte size first (cheap),
then the image header (format, width, height) before any pixel is decoded, so a decompression bomb
is refused from its header, then a full decode that catches truncated or corrupt files.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a browser or a phone camera produces; anything else is refused even if PIL can read it
# (EPS, for example, would run Ghostscript).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")


class UploadRejected(Exception):
    """A refused upload: ``message`` is shown to the user, ``status`` is the HTTP status."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_image") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class CheckedImage:
    """A decoded, RGB, orientation-corrected upload plus what storing it needs."""

    image: Image.Image
    format: str
    width: int
    height: int
    sha256: str
    data: bytes
    name: str


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def image_upload_check(*, upload, field: str = "image") -> CheckedImage:
    """Open ``upload`` (a Django UploadedFile) or raise UploadRejected with a message naming it."""
    if upload is None:
        raise UploadRejected(f"No file in the '{field}' field: choose a photo to upload.", code="missing")
    name = getattr(upload, "name", None) or field
    size = getattr(upload, "size", None)
    limit = settings.MAX_IMAGE_BYTES
    if size is not None and size > limit:
        raise UploadRejected(
            f"{name} is {_megabytes(size)}; the limit is {_megabytes(limit)} (MAX_IMAGE_BYTES).",
            status=413,
            code="too_large",
        )
    # Read at most one byte past the limit: a client that lied about the size is still bounded.
    upload.seek(0)
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise UploadRejected(
            f"{name} is larger than the limit of {_megabytes(limit)} (MAX_IMAGE_BYTES).", status=413, code="too_large"
        )
    if not data:
        raise UploadRejected(f"{name} is empty.", code="empty")

    try:
        # Image.open reads the header only; no pixel is decoded yet.
        probe = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise UploadRejected(f"{name} is refused as a decompression bomb: {exc}", status=413, code="too_many_pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UploadRejected(
            f"{name} is not an image we can read (its content is not JPEG, PNG or WebP, whatever its name says).",
            status=415,
            code="not_an_image",
        ) from exc
    if probe.format not in ACCEPTED_FORMATS:
        raise UploadRejected(
            f"{name} is a {probe.format} image; upload a JPEG, PNG or WebP photo.", status=415, code="unsupported_format"
        )
    width, height = probe.size
    pixel_limit = settings.MAX_IMAGE_PIXELS
    if width <= 0 or height <= 0:
        raise UploadRejected(f"{name} has no pixels ({width}x{height}).", code="corrupt")
    if width * height > pixel_limit:
        raise UploadRejected(
            f"{name} is {width}x{height} = {width * height:,} pixels; the limit is {pixel_limit:,} (MAX_IMAGE_PIXELS). "
            "Very large pixel counts in a small file are how decompression bombs work.",
            status=413,
            code="too_many_pixels",
        )
    try:
        probe.load()  # raises on truncated or corrupt data (LOAD_TRUNCATED_IMAGES stays off)
        image = ImageOps.exif_transpose(probe).convert("RGB")
    except Image.DecompressionBombError as exc:
        raise UploadRejected(f"{name} is refused as a decompression bomb: {exc}", status=413, code="too_many_pixels") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UploadRejected(
            f"{name} is truncated or corrupt ({exc}); upload the complete file.", code="truncated"
        ) from exc
    return CheckedImage(
        image=image,
        format=probe.format,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        name=name,
    )
