"""Search by photo: the product's own photo finds it, filters, and every kind of bad upload."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import make_image_bytes

pytestmark = pytest.mark.django_db
URL = "/api/discover/search/"


def upload(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose pixel data is missing."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_the_own_photo_of_a_product_finds_it_first(api_client_for, catalog, active_set):
    sneaker = catalog["sneaker"]
    response = api_client_for("crowd").post(URL, {"image": upload(sneaker.image.read(), "IMG_0042.jpg"), "k": 3}, format="multipart")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["model_version"] == active_set.pk
    assert [item["sku"] for item in data["results"]][0] == "SNEAK-1"
    assert data["results"][0]["score"] > 0.99
    assert len(data["results"]) == 3
    assert all(item["in_stock"] for item in data["results"])
    assert data["stored"] is None


def test_png_of_the_same_picture_also_finds_it(api_client_for, catalog, active_set):
    png = make_image_bytes(color=(240, 240, 240), shape="ellipse", fmt="PNG")
    data = api_client_for("stylist").post(URL, {"image": upload(png, "x.png", "image/png")}, format="multipart").json()
    assert data["results"][0]["sku"] == "SNEAK-1"


def test_category_filter_restricts_results_with_descendants(api_client_for, catalog, active_set):
    client = api_client_for("stylist")
    photo = catalog["sneaker"].image.read()
    by_path = client.post(URL, {"image": upload(photo), "category": ["Apparel > Bottomwear"]}, format="multipart").json()
    assert {item["sku"] for item in by_path["results"]} == {"JEANS-1", "CHINO-1", "SKIRT-1"}
    jeans_id = catalog["jeans"].category_id
    by_id = client.post(URL, {"image": upload(photo), "category": [str(jeans_id)]}, format="multipart").json()
    assert [item["sku"] for item in by_id["results"]] == ["JEANS-1"]


def test_unknown_category_is_named(api_client_for, catalog, active_set):
    response = api_client_for("stylist").post(URL, {"image": upload(make_image_bytes()), "category": ["Hats"]}, format="multipart")
    assert response.status_code == 400
    assert "Unknown category 'Hats'" in response.json()["detail"]


def test_nothing_is_stored_unless_asked(api_client_for, catalog, active_set, settings):
    client = api_client_for("stylist")
    photo = make_image_bytes(color=(1, 2, 3))
    client.post(URL, {"image": upload(photo)}, format="multipart")
    uploads = settings.MEDIA_ROOT / "discovery" / "uploads"
    assert not uploads.exists()
    data = client.post(URL, {"image": upload(photo), "store": "1"}, format="multipart").json()
    stored = settings.MEDIA_ROOT / data["stored"]
    assert stored.read_bytes() == photo
    assert [p.name for p in uploads.iterdir()] == [stored.name]


@pytest.mark.parametrize(
    "data, name, status, words",
    [
        (b"just some text, not a photo", "holiday.jpg", 415, "is not an image"),
        (b"", "empty.jpg", 400, "is empty"),
        (make_image_bytes(fmt="GIF"), "anim.gif", 415, "GIF image"),
        (make_image_bytes(size=(400, 400))[:900], "cut.jpg", 400, "truncated or corrupt"),
        (png_header_only(30000, 30000), "bomb.png", 413, "decompression bomb"),
    ],
)
def test_bad_uploads_are_refused_with_a_message_naming_the_file(api_client_for, catalog, active_set, data, name, status, words):
    response = api_client_for("stylist").post(URL, {"image": upload(data, name)}, format="multipart")
    assert response.status_code == status, response.content
    assert words in response.json()["detail"]
    assert name in response.json()["detail"]


def test_too_many_bytes_is_413(api_client_for, catalog, settings):
    settings.MAX_IMAGE_BYTES = 2000
    response = api_client_for("stylist").post(URL, {"image": upload(make_image_bytes(size=(300, 300)), "big.jpg")}, format="multipart")
    assert response.status_code == 413
    assert "big.jpg is" in response.json()["detail"] and "MAX_IMAGE_BYTES" in response.json()["detail"]


def test_too_many_pixels_is_413_before_decoding(api_client_for, catalog, settings):
    settings.MAX_IMAGE_PIXELS = 100 * 100
    buf = io.BytesIO()
    Image.new("RGB", (2000, 1000), "white").save(buf, "PNG")  # a few kB for 2 million pixels
    response = api_client_for("stylist").post(URL, {"image": upload(buf.getvalue(), "wide.png")}, format="multipart")
    assert response.status_code == 413
    assert "2000x1000 = 2,000,000 pixels" in response.json()["detail"]


def test_missing_file_and_bad_k(api_client_for, catalog, active_set):
    client = api_client_for("stylist")
    missing = client.post(URL, {"k": "3"}, format="multipart")
    assert missing.status_code == 400
    assert "No file in the 'image' field" in missing.json()["detail"]
    bad_k = client.post(URL, {"image": upload(make_image_bytes()), "k": "500"}, format="multipart")
    assert bad_k.status_code == 400
    assert "k" in bad_k.json()


def test_photo_search_without_active_embeddings_is_503(api_client_for, catalog):
    response = api_client_for("stylist").post(URL, {"image": upload(make_image_bytes())}, format="multipart")
    assert response.status_code == 503
    assert "No embeddings are active" in response.json()["detail"]


def test_photo_search_auth_and_role(no_role_client, catalog):
    assert APIClient().post(URL, {"image": upload(make_image_bytes())}, format="multipart").status_code in (401, 403)
    refused = no_role_client.post(URL, {"image": upload(make_image_bytes())}, format="multipart")
    assert refused.status_code == 403


def test_photo_search_is_throttled_per_user(api_client_for, catalog, active_set, monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "photo_search", "2/minute")
    first_user = api_client_for("stylist", "s1")
    codes = [first_user.post(URL, {"image": upload(make_image_bytes())}, format="multipart").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    # Another user has their own allowance.
    other = api_client_for("stylist", "s2").post(URL, {"image": upload(make_image_bytes())}, format="multipart")
    assert other.status_code == 200
