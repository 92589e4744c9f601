"""The crowd API: blind JSON, role checks, limits with clear messages, admin endpoints, schema."""

from __future__ import annotations

import json

import pytest

from tests.crowd.conftest import make_gold, make_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _crowd_settings(settings):
    settings.CROWD_VOTES_PER_PAIR = 3
    settings.CROWD_GOLD_RATE = 0.0
    settings.CROWD_DAILY_CAP = 1000
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "crowd_burst": "1000/minute"},
    }


def test_next_is_blind_for_gold_and_ordinary_pairs_alike(api_client_for, settings, stylist):
    settings.CROWD_GOLD_RATE = 1.0
    make_pairs(3)
    gold = make_gold(3, stylist)
    client = api_client_for("crowd")
    body = client.get("/api/crowd/next/").json()
    assert body["pair"]["id"] in gold  # rate 1.0: the first pair served is gold...
    assert set(body["pair"]) == {"id", "a", "b"} == set(body["prefetch"])  # ...and looks like any other
    assert set(body["pair"]["a"]) == {"id", "sku", "title", "brand", "category", "colour", "image_url"}
    text = json.dumps(body)
    for hidden in ("model_score", "source", "is_gold", "votes", "exploration", "0.42"):
        assert hidden not in text
    assert body["counts"] == {"today": 0, "queue_left": 3, "queue_left_capped": False, "daily_cap": 1000}
    assert body["empty_reason"] is None and body["empty_code"] is None


def test_submit_skip_undo_round_trip(api_client_for):
    make_pairs(3)
    client = api_client_for("crowd")
    body = client.get("/api/crowd/next/").json()
    first, second = body["pair"]["id"], body["prefetch"]["id"]
    vote = {"pair_id": first, "value": "yes", "reasons": [], "note": "", "duration_ms": 2400}
    created = client.post("/api/crowd/submit/", vote, format="json")
    assert created.status_code == 201 and created.json()["created"] is True
    assert created.json()["counts"]["today"] == 1
    again = client.post("/api/crowd/submit/", vote | {"value": "no"}, format="json")
    assert again.status_code == 200 and again.json()["label_id"] == created.json()["label_id"]

    skipped = client.post("/api/crowd/skip/", {"pair_id": second}, format="json")
    assert skipped.status_code == 200 and "counts" in skipped.json()
    undone = client.post("/api/crowd/undo/", {}, format="json")
    assert undone.status_code == 200 and undone.json()["pair"]["id"] == first
    assert "model_score" not in undone.json()["pair"]
    nothing = client.post("/api/crowd/undo/", {}, format="json")
    assert nothing.status_code == 409 and nothing.json()["detail"].startswith("Nothing to undo")


def test_bad_input_names_the_field(api_client_for):
    make_pairs(1)
    client = api_client_for("crowd")
    pair_id = client.get("/api/crowd/next/").json()["pair"]["id"]
    bad = client.post("/api/crowd/submit/", {"pair_id": pair_id, "value": "maybe"}, format="json")
    assert bad.status_code == 400 and "value" in bad.json()
    not_mine = client.post("/api/crowd/submit/", {"pair_id": 999999, "value": "yes"}, format="json")
    assert not_mine.status_code == 409 and "was not given to you" in not_mine.json()["detail"]


def test_daily_cap_and_rate_limit_answer_429_with_clear_messages(api_client_for, settings):
    make_pairs(6)
    client = api_client_for("crowd")
    body = client.get("/api/crowd/next/").json()
    settings.CROWD_DAILY_CAP = 1
    assert client.post("/api/crowd/submit/", {"pair_id": body["pair"]["id"], "value": "yes"}, format="json").status_code == 201
    capped = client.post("/api/crowd/submit/", {"pair_id": body["prefetch"]["id"], "value": "yes"}, format="json")
    assert capped.status_code == 429 and "the daily limit is 1" in capped.json()["detail"]
    empty = client.get("/api/crowd/next/").json()
    assert empty["pair"] is None and empty["empty_code"] == "daily_cap"

    settings.CROWD_DAILY_CAP = 1000
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "crowd_burst": "2/minute"},
    }
    fast = api_client_for("crowd", "fast-worker")
    codes = []
    for _ in range(3):
        pair_id = fast.get("/api/crowd/next/").json()["pair"]["id"]
        codes.append(fast.post("/api/crowd/submit/", {"pair_id": pair_id, "value": "no"}, format="json"))
    assert [r.status_code for r in codes] == [201, 201, 429]
    assert "faster than the limit of 2/minute" in codes[2].json()["detail"]


def test_suspended_worker_gets_a_polite_refusal(api_client_for):
    from curation.crowd import services

    make_pairs(2)
    client = api_client_for("crowd")
    pair_id = client.get("/api/crowd/next/").json()["pair"]["id"]
    services.worker_suspend(profile=services.worker_profile_get(user=client.user), reason="test")
    body = client.get("/api/crowd/next/").json()
    assert body["pair"] is None and body["empty_code"] == "suspended" and "paused" in body["empty_reason"]
    refused = client.post("/api/crowd/submit/", {"pair_id": pair_id, "value": "yes"}, format="json")
    assert refused.status_code == 403 and "paused" in refused.json()["detail"]
    assert client.get("/api/crowd/me/").json()["status"] == "suspended"


@pytest.mark.parametrize(
    "role,method,url,allowed",
    [
        ("stylist", "get", "/api/crowd/next/", False),
        ("merchandiser", "post", "/api/crowd/submit/", False),
        ("crowd", "get", "/api/crowd/quality/", False),
        ("stylist", "get", "/api/crowd/quality/", True),
        ("crowd", "get", "/api/crowd/workers/", False),
        ("stylist", "post", "/api/crowd/enqueue/", False),
        ("stylist", "post", "/api/crowd/aggregate/", False),
        ("admin", "get", "/api/crowd/workers/", True),
    ],
)
def test_roles(api_client_for, role, method, url, allowed):
    response = getattr(api_client_for(role), method)(url, {}, format="json")
    assert (response.status_code != 403) is allowed, response.content


def test_admin_reinstates_enqueues_and_aggregates(api_client_for, make_user):
    from curation.crowd import services
    from curation.pairs.models import CandidatePair

    worker = make_user("crowd", "to-reinstate")
    services.worker_suspend(profile=services.worker_profile_get(user=worker), reason="test")
    admin = api_client_for("admin")
    listed = admin.get("/api/crowd/workers/").json()
    assert [w["status"] for w in listed if w["username"] == "to-reinstate"] == ["suspended"]
    back = admin.post(f"/api/crowd/workers/{worker.id}/reinstate/")
    assert back.status_code == 200 and back.json()["status"] == "active"
    assert admin.post(f"/api/crowd/workers/{worker.id}/reinstate/").status_code == 409
    assert admin.post("/api/crowd/workers/999999/reinstate/").status_code == 404

    make_pairs(3, audience="stylist")
    assert admin.post("/api/crowd/enqueue/", {}, format="json").status_code == 400
    moved = admin.post("/api/crowd/enqueue/", {"limit": 2}, format="json").json()
    assert len(moved["moved"]) == 2 and CandidatePair.objects.filter(audience="crowd").count() == 2
    done = admin.post("/api/crowd/aggregate/").json()
    assert done == {"aggregated": 0, "decided": 0, "escalated": 0, "method": "dawid_skene"}


def test_completing_a_pair_queues_aggregation(api_client_for, settings):
    from curation.crowd.models import AggregatedLabel

    settings.CROWD_VOTES_PER_PAIR = 1
    (pair,) = make_pairs(1)
    client = api_client_for("crowd")
    client.get("/api/crowd/next/")
    client.post("/api/crowd/submit/", {"pair_id": pair.id, "value": "yes", "duration_ms": 3000}, format="json")
    # Celery runs eagerly in tests: the queued aggregation has already run.
    assert AggregatedLabel.objects.get(pair=pair).value == "yes"


def test_openapi_schema_lists_the_crowd_endpoints_blind(api_client_for):
    schema = api_client_for("crowd").get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/crowd/next/", "/api/crowd/submit/", "/api/crowd/skip/", "/api/crowd/undo/", "/api/crowd/quality/",
                 "/api/crowd/workers/{user_id}/reinstate/", "/api/crowd/enqueue/"):
        assert path in schema["paths"], path
    assert set(schema["components"]["schemas"]["BlindPair"]["properties"]) == {"id", "a", "b"}
