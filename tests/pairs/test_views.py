"""HTML pages: role checks, the labeler's data attributes, outfit list and delete."""

from __future__ import annotations

import pytest

from curation.pairs import services
from curation.pairs.models import Outfit

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/pairs/label/", "/pairs/outfits/", "/pairs/outfits/new/"])
@pytest.mark.parametrize("role, status", [("stylist", 200), ("admin", 200), ("crowd", 403), ("merchandiser", 403)])
def test_pages_check_the_role(role_client, url, role, status):
    assert role_client(role).get(url).status_code == status


def test_anonymous_goes_to_login(client):
    res = client.get("/pairs/label/")
    assert res.status_code == 302 and "/accounts/login/" in res["Location"]


def test_label_page_wires_the_labeler_to_the_api(role_client):
    html = role_client("stylist").get("/pairs/label/").content.decode()
    for attr in ('data-next-url="/api/pairs/next/"', 'data-submit-url="/api/pairs/submit/"', 'data-skip-url="/api/pairs/skip/"',
                 'data-undo-url="/api/pairs/undo/"', 'data-blind="0"', "js/labeling.js", 'data-key="6"'):
        assert attr in html


def test_outfit_list_edit_and_delete_own_only(catalog, role_client):
    alice = role_client("stylist", "alice")
    bob = role_client("stylist", "bob")
    outfit = services.outfit_create(user=alice.user, name="Sunday", product_ids=[catalog[0].pk, catalog[2].pk])
    assert "Sunday" in bob.get("/pairs/outfits/").content.decode()
    assert "Sunday" not in bob.get("/pairs/outfits/?mine=1").content.decode()
    page = bob.get(f"/pairs/outfits/{outfit.pk}/").content.decode()
    assert "Only its author or an admin can change this outfit" in page
    bob.post(f"/pairs/outfits/{outfit.pk}/delete/")
    assert Outfit.objects.filter(pk=outfit.pk).exists()
    res = alice.post(f"/pairs/outfits/{outfit.pk}/delete/", follow=True)
    assert not Outfit.objects.filter(pk=outfit.pk).exists()
    assert "Deleted outfit" in res.content.decode()
    assert alice.get(f"/pairs/outfits/{outfit.pk}/").status_code == 404
