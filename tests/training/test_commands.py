"""retrain and score_pairs from the command line."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from curation.training.models import ModelVersion, PipelineRun

pytestmark = pytest.mark.django_db


def test_retrain_sync_then_score_pairs(tiny_labels, tmp_path, django_capture_on_commit_callbacks):
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("retrain", "--sync", stdout=out)
    text = out.getvalue()
    run = PipelineRun.objects.get()
    assert run.status == "succeeded" and run.trigger == "cli"
    assert "[embed]" in text and "[train_siamese]" in text and f"Run {run.pk} succeeded" in text
    siamese = ModelVersion.objects.get(kind="siamese", status="active")
    assert f"siamese v{siamese.pk} active" in text

    # A model is active: the first-start option queues nothing.
    again = io.StringIO()
    call_command("retrain", "--if-no-active-model", stdout=again)
    assert "already active" in again.getvalue() and PipelineRun.objects.count() == 1

    a, b, c = tiny_labels[0], tiny_labels[1], tiny_labels[7]
    src = tmp_path / "in.csv"
    src.write_text(f"sku_a,sku_b,note\n{a.sku},{b.sku},x\n{a.sku},NOPE,y\nGHOST,{c.sku},z\n{b.sku},{a.sku},w\n")
    dst = tmp_path / "out" / "scores.csv"
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("score_pairs", str(src), str(dst), stdout=stdout, stderr=stderr)
    rows = list(csv.DictReader(dst.open()))
    assert [(r["sku_a"], r["sku_b"]) for r in rows] == [(a.sku, b.sku), (a.sku, "NOPE"), ("GHOST", c.sku), (b.sku, a.sku)]
    assert rows[0]["score"] and rows[0]["score"] == rows[3]["score"]  # symmetric
    assert 0.0 <= float(rows[0]["score"]) <= 1.0
    assert rows[1]["score"] == "" and rows[2]["score"] == ""
    assert {r["model_version"] for r in rows} == {str(siamese.pk)}
    assert stderr.getvalue().splitlines() == ["row 3: unknown sku_b 'NOPE'", "row 4: unknown sku_a 'GHOST'"]
    assert "Scored 2 of 4" in stdout.getvalue()


def test_score_pairs_names_missing_columns_and_missing_model(db, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\nX,Y\n")
    with pytest.raises(CommandError, match="no active siamese model"):
        call_command("score_pairs", str(src), str(tmp_path / "o.csv"))
    ModelVersion.objects.create(kind="siamese", status="active")  # no artifact: not servable
    with pytest.raises(CommandError, match="no active siamese model"):
        call_command("score_pairs", str(src), str(tmp_path / "o.csv"))


def test_score_pairs_requires_the_columns(tiny_labels, tmp_path, django_capture_on_commit_callbacks, monkeypatch):
    from curation.training import serving

    class AnyScorer:
        version_id = 1

    monkeypatch.setattr(serving, "active_pair_scorer", lambda: AnyScorer())
    src = tmp_path / "in.csv"
    src.write_text("left,right\nX,Y\n")
    with pytest.raises(CommandError, match="missing column\\(s\\) sku_a, sku_b"):
        call_command("score_pairs", str(src), str(tmp_path / "o.csv"))


def test_retrain_on_empty_catalog_and_when_busy(db):
    with pytest.raises(CommandError, match="catalog is empty"):
        call_command("retrain", "--sync")
    from tests.factories import make_product

    make_product()
    PipelineRun.objects.create(status="running", trigger="button")
    from django.utils import timezone

    PipelineRun.objects.update(heartbeat_at=timezone.now())
    with pytest.raises(CommandError, match="already in progress"):
        call_command("retrain")
    out = io.StringIO()
    call_command("retrain", "--if-no-active-model", stdout=out)
    assert "already running" in out.getvalue()
