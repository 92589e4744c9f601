"""The crowd's HTML pages and admin actions."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.crowd.conftest import make_pairs

pytestmark = pytest.mark.django_db


def test_label_page_is_blind_and_points_at_the_crowd_api(role_client):
    response = role_client("crowd").get("/crowd/label/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-blind="1"' in html
    assert 'data-next-url="/api/crowd/next/"' in html and 'data-submit-url="/api/crowd/submit/"' in html
    assert "Why this pair" not in html and "model score" not in html.lower()
    assert "js/labeling.js" in html
    assert "csrftoken" in response.cookies


def test_suspended_worker_sees_a_polite_page(role_client):
    from curation.crowd import services

    client = role_client("crowd")
    services.worker_suspend(profile=services.worker_profile_get(user=client.user), reason="test")
    html = client.get("/crowd/label/").content.decode()
    assert 'data-testid="crowd-suspended"' in html and "Thank you for your work so far" in html
    assert 'id="labeler"' not in html


@pytest.mark.parametrize("role,status", [("crowd", 403), ("merchandiser", 403), ("stylist", 200), ("admin", 200)])
def test_quality_page_roles(role_client, role, status):
    assert role_client(role).get("/crowd/quality/").status_code == status


@pytest.mark.parametrize("role", ["stylist", "merchandiser"])
def test_label_page_is_for_crowd_workers(role_client, role):
    assert role_client(role).get("/crowd/label/").status_code == 403


def test_quality_page_shows_workers_batches_and_plot_data(role_client, crowd_workers):
    from curation.crowd import services

    (pair,) = make_pairs(1)
    workers = crowd_workers(2)
    for w, value, ms in zip(workers, ["yes", "no"], [300, 4000]):
        services._reserve(pair.id, w, timezone.now())
        services.crowd_vote_submit(worker=w, pair_id=pair.id, value=value, duration_ms=ms)
    html = role_client("admin").get("/crowd/quality/").content.decode()
    assert 'data-worker="worker0"' in html and 'data-worker="worker1"' in html
    assert 'data-too-fast="1"' in html and 'data-too-fast="0"' in html
    assert 'id="labels-per-day-data"' in html and f'"day": "{timezone.localdate().isoformat()}", "count": 2' in html
    assert "js/crowd_quality.js" in html
    assert timezone.localdate().isoformat() in html  # the batch row


def test_admin_actions_reinstate_send_to_crowd_and_mark_gold(role_client, make_user, stylist):
    from curation.crowd import services
    from curation.crowd.models import WorkerProfile
    from curation.pairs.models import CandidatePair, PairLabel

    admin = role_client("admin")
    worker = make_user("crowd", "suspended-one")
    profile = services.worker_suspend(profile=services.worker_profile_get(user=worker), reason="test")
    response = admin.post(
        "/admin/crowd/workerprofile/", {"action": "reinstate_selected", "_selected_action": [profile.pk]}, follow=True
    )
    assert response.status_code == 200 and "Reinstated 1 worker(s)." in response.content.decode()
    assert WorkerProfile.objects.get(pk=profile.pk).status == "active"

    open_pair, labelled = make_pairs(2, audience="stylist")
    PairLabel.objects.create(pair=labelled, user=stylist, kind="stylist", value="yes")
    response = admin.post(
        "/admin/crowd/crowdpair/", {"action": "send_to_crowd", "_selected_action": [open_pair.pk, labelled.pk]}, follow=True
    )
    html = response.content.decode()
    assert "Sent 1 pair(s) to the crowd." in html and f"Pair {labelled.pk} not sent" in html
    assert CandidatePair.objects.get(pk=open_pair.pk).audience == "crowd"

    response = admin.post("/admin/crowd/crowdpair/", {"action": "mark_gold", "_selected_action": [labelled.pk]}, follow=True)
    assert "Marked 1 pair(s) as gold." in response.content.decode()
    assert CandidatePair.objects.get(pk=labelled.pk).is_gold
