"""Registry API and the models page: roles, retrain, activate, rollback, status, schema."""

from __future__ import annotations

import pytest

from curation.training.models import ModelVersion, PipelineRun

pytestmark = pytest.mark.django_db


def _versions(kind="siamese"):
    old = ModelVersion.objects.create(kind=kind, status="retired", metrics={"pair_auc": 0.7})
    new = ModelVersion.objects.create(kind=kind, status="ready", metrics={"pair_auc": 0.8})
    return old, new


@pytest.mark.parametrize("role,code", [("stylist", 200), ("merchandiser", 200), ("admin", 200), ("crowd", 403)])
def test_status_and_lists_are_for_model_viewers(api_client_for, role, code):
    client = api_client_for(role)
    for url in ("/api/models/status/", "/api/models/runs/", "/api/models/versions/"):
        assert client.get(url).status_code == code, url


@pytest.mark.parametrize("role", ["stylist", "merchandiser", "crowd"])
def test_only_admins_act(api_client_for, role):
    client = api_client_for(role)
    old, new = _versions()
    assert client.post("/api/models/runs/", {}, format="json").status_code == 403
    assert client.post(f"/api/models/versions/{new.pk}/activate/").status_code == 403
    assert client.post("/api/models/rollback/", {}, format="json").status_code == 403
    assert not PipelineRun.objects.exists()


def test_retrain_queues_one_run_and_refuses_a_second(api_client_for):
    client = api_client_for("admin")
    response = client.post("/api/models/runs/", {"force": True}, format="json")
    assert response.status_code == 202
    run = PipelineRun.objects.get()
    assert response.json()["id"] == run.pk and run.forced and run.trigger == "button" and run.requested_by == client.user
    assert response.json()["step_order"][0] == "embed"
    busy = client.post("/api/models/runs/", {}, format="json")
    assert busy.status_code == 409 and busy.json()["run"]["id"] == run.pk
    status = client.get("/api/models/status/").json()
    assert status["run"]["id"] == run.pk and status["run"]["status"] == "queued"


def test_activate_and_rollback(api_client_for, django_capture_on_commit_callbacks):
    client = api_client_for("admin")
    old, new = _versions()
    old.status = "active"
    old.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/models/versions/{new.pk}/activate/")
    assert response.status_code == 200 and response.json()["status"] == "active"
    old.refresh_from_db()
    assert old.status == "retired"
    assert client.get("/api/models/status/").json()["active"]["siamese"]["id"] == new.pk
    with django_capture_on_commit_callbacks(execute=True):
        back = client.post("/api/models/rollback/", {"kind": "siamese"}, format="json")
    assert back.status_code == 200 and [v["id"] for v in back.json()] == [old.pk]
    assert ModelVersion.objects.get(kind="siamese", status="active") == old


def test_activate_refuses_failed_version_and_rollback_without_history(api_client_for):
    client = api_client_for("admin")
    failed = ModelVersion.objects.create(kind="outfit", status="failed")
    response = client.post(f"/api/models/versions/{failed.pk}/activate/")
    assert response.status_code == 409 and "failed" in response.json()["detail"]
    assert client.post("/api/models/versions/999999/activate/").status_code == 404
    nothing = client.post("/api/models/rollback/", {"kind": "outfit"}, format="json")
    assert nothing.status_code == 409 and "no earlier outfit version" in nothing.json()["detail"]
    bad = client.post("/api/models/rollback/", {"kind": "backbone"}, format="json")
    assert bad.status_code == 400


def test_models_page_by_role(role_client, client):
    old, new = _versions()
    stylist = role_client("stylist").get("/models/")
    assert stylist.status_code == 200
    html = stylist.content.decode()
    assert f'data-version="{new.pk}"' in html and 'id="retrain"' not in html and 'class="activate"' not in html
    admin = role_client("admin", "admin-page").get("/models/").content.decode()
    assert 'id="retrain"' in admin and f'class="activate" data-version="{new.pk}"' in admin
    assert role_client("crowd").get("/models/").status_code == 403
    assert client.get("/models/").status_code == 302


def test_models_page_shows_side_attributes_and_who_scores_looks(role_client):
    ModelVersion.objects.create(kind="siamese", status="ready", metrics={"pair_auc": 0.8, "side_attributes": ["gender", "usage"]})
    ModelVersion.objects.create(kind="siamese", status="retired", metrics={"pair_auc": 0.7, "side_attributes": []})
    ModelVersion.objects.create(kind="outfit", status="ready", metrics={"fitb": 0.3, "looks_scored_by": "pair_model"})
    html = role_client("stylist").get("/models/").content.decode()
    assert "side attributes" in html and "looks scored by" in html
    assert '<td class="metric">gender, usage</td>' in html and '<td class="metric">pair model</td>' in html
    assert "[]" not in html and "pair_model" not in html


def test_models_page_lists_feature_spaces_with_their_fine_tuning_figures_and_no_buttons(role_client):
    ModelVersion.objects.create(kind="backbone", status="ready", backbone="resnet50:none:224")
    tuned = ModelVersion.objects.create(
        kind="backbone", status="active", backbone="resnet50:sd-0123456789abcdef:224",
        metrics={"frozen_holdout_accuracy": 0.61, "holdout_accuracy": 0.74, "frozen_knn_precision_at_10": 0.52, "knn_precision_at_10": 0.66},
    )
    html = role_client("admin", "admin-backbones").get("/models/").content.decode()
    section = html.split('data-kind="backbone"', 1)[1].split("</section>", 1)[0]
    assert "finetune_backbone" in section and "resnet50:sd-0123456789abcdef:224" in section and "resnet50:none:224" in section
    assert all(f'<td class="metric">{v}</td>' in section for v in ("0.61", "0.74", "0.52", "0.66"))
    assert f'data-version="{tuned.pk}"' in section and "activate" not in section and "rollback" not in section


def test_schema_lists_the_registry_endpoints(role_client):
    schema = role_client("admin").get("/api/schema/").content.decode()
    for path in ("/api/models/runs/", "/api/models/versions/{version_id}/activate/", "/api/models/rollback/", "/api/models/status/"):
        assert path in schema
