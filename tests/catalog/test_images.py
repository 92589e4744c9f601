"""image_validate: real images pass with their facts; every kind of bad file gets a clear refusal."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from curation.catalog.services import ImageValidationError, image_validate
from tests.catalog.conftest import png_header_only
from tests.factories import make_image_bytes


def test_valid_jpeg_from_path_and_file_object(tmp_path):
    data = make_image_bytes(size=(48, 64))
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    for source in (path, str(path), io.BytesIO(data)):
        checked = image_validate(source)
        assert (checked.width, checked.height, checked.format, checked.extension) == (48, 64, "JPEG", "jpg")
        assert checked.sha256 == hashlib.sha256(data).hexdigest()
        assert checked.size_bytes == len(data) and checked.data == data
        assert checked.open().size == (48, 64)


def test_file_object_is_read_from_the_start():
    data = make_image_bytes(fmt="PNG")
    stream = io.BytesIO(data)
    stream.read(10)
    assert image_validate(stream).format == "PNG"


def _refusal(source) -> str:
    with pytest.raises(ImageValidationError) as info:
        image_validate(source)
    return str(info.value)


def test_missing_file(tmp_path):
    assert "not found" in _refusal(tmp_path / "nope.jpg")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in _refusal(tmp_path / "empty.jpg")


def test_text_named_jpg_is_not_an_image(tmp_path):
    (tmp_path / "fake.jpg").write_text("id,title\n1,shirt\n")
    assert "not an image" in _refusal(tmp_path / "fake.jpg")


def test_oversized_file(tmp_path, settings):
    settings.MAX_IMAGE_BYTES = 200
    (tmp_path / "big.jpg").write_bytes(make_image_bytes())
    message = _refusal(tmp_path / "big.jpg")
    assert "too large" in message and "MAX_IMAGE_BYTES" in message
    assert "too large" in _refusal(io.BytesIO(make_image_bytes()))


def test_more_pixels_than_the_setting_is_refused_before_decoding(settings):
    settings.MAX_IMAGE_PIXELS = 1000
    message = _refusal(io.BytesIO(make_image_bytes(size=(48, 64))))
    assert "too many pixels" in message and "48x64" in message and "decompression bomb" in message


def test_pil_decompression_bomb_header(settings):
    # 100000 x 100000 claimed in a few hundred bytes: PIL's own guard and ours both refuse it.
    message = _refusal(io.BytesIO(png_header_only(100_000, 100_000)))
    assert "decompression bomb" in message


def test_pil_decompression_bomb_warning_is_an_error(settings, monkeypatch):
    # Between PIL's limit and twice it, PIL only warns; image_validate must still refuse.
    settings.MAX_IMAGE_PIXELS = 10**9
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    assert "decompression bomb" in _refusal(io.BytesIO(make_image_bytes(size=(48, 64))))


def test_truncated_jpeg():
    data = make_image_bytes(size=(120, 160))
    assert "truncated" in _refusal(io.BytesIO(data[: len(data) // 2]))


def test_corrupt_png():
    data = bytearray(make_image_bytes(size=(64, 64), fmt="PNG"))
    idat = data.index(b"IDAT")
    for i in range(idat + 8, idat + 40):
        data[i] ^= 0x5A
    assert "corrupt" in _refusal(io.BytesIO(bytes(data)))


def test_unsupported_format():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, format="TIFF")
    assert "unsupported image format TIFF" in _refusal(buf)
