"""finetune_backbone: fine-tuned weights for ML_WEIGHTS, measured on held-out product models."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from curation.catalog.models import Product
from curation.review.models import CatalogFlag
from curation.training.models import ModelVersion
from curation.training.services import embedding_set_build
from curation.training.services.embeddings import EmbedReport
from curation.training.services.finetune import (
    FinetuneError,
    FinetuneOptions,
    _check_memory,
    backbone_finetune,
    estimate_cache_bytes,
    read_sidecar,
    sidecar_path,
)
from ml.backbone import Embedder
from ml.config import BackboneConfig, file_sha256
from tests.factories import make_product

pytestmark = pytest.mark.django_db

FAST = FinetuneOptions(epochs=2, holdout_percent=30)


def _embedder(weights: str) -> Embedder:
    return Embedder(BackboneConfig(weights=weights, image_size=64, device="cpu", num_workers=0, bf16=False))


def test_command_writes_weights_the_app_can_load_and_says_how_to_use_them(tiny_catalog, tmp_path):
    out = tmp_path / "weights" / "ft.pt"
    stdout = io.StringIO()
    call_command("finetune_backbone", str(out), "--epochs", "2", "--holdout-percent", "30", "--json", stdout=stdout)
    text = stdout.getvalue()
    report = json.loads(text.strip().splitlines()[-1])
    assert out.is_file() and report["path"] == str(out.resolve())
    assert report["sha256"] == file_sha256(out)
    assert "[cache]" in text and "[finetune]" in text and "2/2 epochs" in text
    assert f"ML_WEIGHTS={out.resolve()}" in text and "retrain" in text
    assert report["products"] == 24 and report["classes"] == 4
    assert report["train_products"] + report["holdout_products"] == 24 and report["holdout_products"] > 0
    for key in ("holdout_accuracy", "network_holdout_accuracy", "frozen_holdout_accuracy", "knn_precision_at_10", "frozen_knn_precision_at_10", "train_accuracy"):
        assert 0.0 <= report["metrics"][key] <= 1.0, key
    assert [h["epoch"] for h in report["history"]] == [1, 2]

    # The file is a whole backbone: the frozen layers are the base weights', the trained block is new.
    base, tuned = _embedder("none"), _embedder(str(out))
    assert tuned.key == report["new_backbone"] != base.key == report["base_backbone"]
    base_state, tuned_state = base.model.state_dict(), tuned.model.state_dict()
    assert torch.equal(base_state["layer1.0.conv1.weight"], tuned_state["layer1.0.conv1.weight"])
    assert torch.equal(base_state["layer3.5.conv3.weight"], tuned_state["layer3.5.conv3.weight"])
    assert not torch.equal(base_state["layer4.2.conv3.weight"], tuned_state["layer4.2.conv3.weight"])

    record = read_sidecar(out)
    assert record["sha256"] == report["sha256"] and record["options"]["epochs"] == 2 and len(record["category_ids"]) == 4


def test_blocks_reach_into_layer3(tiny_catalog, tmp_path):
    out = tmp_path / "ft4.pt"
    backbone_finetune(out_path=out, options=FinetuneOptions(epochs=1, blocks=4, holdout_percent=0))
    base_state, tuned_state = _embedder("none").model.state_dict(), _embedder(str(out)).model.state_dict()
    assert not torch.equal(base_state["layer3.5.conv3.weight"], tuned_state["layer3.5.conv3.weight"])
    assert torch.equal(base_state["layer3.4.conv3.weight"], tuned_state["layer3.4.conv3.weight"])


def test_open_flags_single_product_categories_and_the_sample_cap_leave_products_out(tiny_catalog, tmp_path):
    for product in tiny_catalog[:2]:
        CatalogFlag.objects.create(product=product, catalog_value="x", predicted_value="y", confidence=0.9)
    CatalogFlag.objects.create(product=tiny_catalog[2], catalog_value="x", predicted_value="y", confidence=0.9,
                               state=CatalogFlag.State.KEPT)  # decided: its label is trusted again
    make_product(category="Apparel > Topwear > Kurtas", colour="Red", product_model="lonely")
    report = backbone_finetune(out_path=tmp_path / "a.pt", options=FinetuneOptions(epochs=1, holdout_percent=0))
    assert report.excluded_open_flags == 2 and report.excluded_small_categories == 1
    assert report.products == 22 and report.holdout_products == 0 and "knn_precision_at_10" not in report.metrics

    capped = backbone_finetune(out_path=tmp_path / "b.pt", options=FinetuneOptions(epochs=1, holdout_percent=0, max_products=12))
    assert capped.products <= 12


def test_refuses_to_overwrite_files_and_never_the_weights_in_use(tiny_catalog, tmp_path, settings):
    out = tmp_path / "ft.pt"
    out.write_bytes(b"old")
    with pytest.raises(CommandError, match="exists: choose another path or pass --overwrite"):
        call_command("finetune_backbone", str(out), "--epochs", "1", stdout=io.StringIO())
    assert out.read_bytes() == b"old"
    settings.ML_WEIGHTS = str(out)
    with pytest.raises(CommandError, match="is the file ML_WEIGHTS uses now"):
        call_command("finetune_backbone", str(out), "--epochs", "1", "--overwrite", stdout=io.StringIO())
    settings.ML_WEIGHTS = "none"
    call_command("finetune_backbone", str(out), "--epochs", "1", "--overwrite", stdout=io.StringIO())
    assert out.read_bytes() != b"old" and read_sidecar(out) is not None


def test_bad_options_and_catalogs_name_what_to_change(db, tmp_path):
    make_product(category="Apparel > Topwear > Shirts")
    make_product(category="Apparel > Topwear > Shirts")
    with pytest.raises(CommandError, match="1 categories have two or more products"):
        call_command("finetune_backbone", str(tmp_path / "x.pt"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="--blocks 12"):
        call_command("finetune_backbone", str(tmp_path / "x.pt"), "--blocks", "12", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--holdout-percent 80"):
        call_command("finetune_backbone", str(tmp_path / "x.pt"), "--holdout-percent", "80", stdout=io.StringIO())
    assert not (tmp_path / "x.pt").exists()


def test_no_half_written_weights_when_writing_fails(tiny_catalog, tmp_path, monkeypatch):
    import curation.training.services.finetune as service

    real_replace, calls = service.os.replace, []
    out = tmp_path / "weights" / "ft.pt"

    def replace_then_fail(src, dst):
        if Path(dst).parent == out.parent:  # not the embedding set the fine-tune also writes
            calls.append(Path(dst).name)
            if len(calls) == 2:  # the record is in place, the weights are not
                raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(service.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="disk full"):
        backbone_finetune(out_path=out, options=FinetuneOptions(epochs=1, holdout_percent=0))
    assert calls == ["ft.pt.json", "ft.pt"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ft.pt.json"]  # no partial file left
    assert read_sidecar(out) is None


def test_the_same_weights_make_the_same_file(tiny_catalog, tmp_path):
    first = backbone_finetune(out_path=tmp_path / "a.pt", options=FinetuneOptions(epochs=1, holdout_percent=0))
    second = backbone_finetune(out_path=tmp_path / "other" / "b.pt", options=FinetuneOptions(epochs=1, holdout_percent=0))
    assert first.sha256 == second.sha256 and first.new_backbone == second.new_backbone


def test_memory_estimate_and_check():
    # layer3's output at 64 px: 1024 channels x 4 x 4, fp16; layer2's for deeper fine-tuning: 512 x 8 x 8.
    assert estimate_cache_bytes(products=10, blocks=3, image_size=64) == 10 * 1024 * 16 * 2
    assert estimate_cache_bytes(products=10, blocks=4, image_size=64) == 10 * 512 * 64 * 2
    with pytest.raises(FinetuneError, match="lower --max-products or --blocks"):
        _check_memory(products=10**9, blocks=3, image_size=224)


def test_a_retrain_with_the_new_weights_embeds_again_and_records_the_fine_tuning(tiny_catalog, tmp_path, settings):
    first = embedding_set_build(activate=True)
    out = tmp_path / "ft.pt"
    report = backbone_finetune(out_path=out, options=FAST)
    settings.ML_WEIGHTS = str(out)
    embed = EmbedReport()
    second = embedding_set_build(activate=True, report=embed)
    assert second.backbone == report.new_backbone != first.backbone
    assert embed.embedded == 24 and embed.reused == 0  # no feature of the old weights is reused
    version = ModelVersion.objects.get(pk=second.model_version_id)
    assert version.kind == ModelVersion.Kind.BACKBONE and version.status == ModelVersion.Status.ACTIVE
    assert version.metrics == report.metrics and version.config["base_backbone"] == report.base_backbone
    assert version.data_summary["products"] == 24 and len(version.history) == 2


def test_a_record_that_no_longer_matches_its_file_is_ignored(tiny_catalog, tmp_path):
    out = tmp_path / "ft.pt"
    backbone_finetune(out_path=out, options=FinetuneOptions(epochs=1, holdout_percent=0))
    assert read_sidecar(out) is not None
    torch.save({"other": torch.zeros(1)}, out)
    assert read_sidecar(out) is None
    sidecar_path(out).write_text("not json")
    assert read_sidecar(out) is None


def test_catalog_flags_after_the_switch_read_the_base_weights_features(tiny_labels, tmp_path, settings, monkeypatch,
                                                                      django_capture_on_commit_callbacks):
    """A fine-tune learned every product's category, wrong ones too: on its features a wrong label
    would vouch for itself. Flags read the base features, which the fine-tune stored on the way."""
    import ml.category
    from curation.training.embedding_files import read_embedding_files
    from curation.training.ml_objects import artifact_abspath
    from curation.training.models import EmbeddingSet, PipelineRun
    from curation.training.services import pipeline_run_execute, pipeline_run_request

    out = tmp_path / "ft.pt"
    report = backbone_finetune(out_path=out, options=FAST)
    base_set = EmbeddingSet.objects.get(backbone=report.base_backbone)
    assert not base_set.is_active and base_set.count == 24
    base = read_embedding_files(artifact_abspath(base_set.vectors_path))
    base_of = dict(zip(base.product_ids.tolist(), np.asarray(base.vectors)))
    # fp32 both, but in batches of different sizes: oneDNN may pick other kernels (on an AMX
    # processor one value in 2,048 differed by 2e-4 of itself); a fine-tuned feature differs wholly.
    np.testing.assert_allclose(base_of[tiny_labels[0].pk], _embedder("none").embed_paths([tiny_labels[0].image.path])[0], rtol=1e-3, atol=1e-4)

    settings.ML_WEIGHTS = str(out)
    late = make_product(category="Apparel > Topwear > Shirts", color=(10, 200, 200), colour="Teal", product_model="late")  # a new image
    embedded = []
    original = Embedder.embed_paths
    monkeypatch.setattr(Embedder, "embed_paths", lambda self, paths, **k: embedded.append((self.key, len(paths))) or original(self, paths, **k))
    seen = {}
    original_oof = ml.category.out_of_fold_predictions
    monkeypatch.setattr(ml.category, "out_of_fold_predictions", lambda features, *a, **k: seen.setdefault("features", features) is None or original_oof(features, *a, **k))
    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, forced=False, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        run = pipeline_run_execute(run_id=run.pk)
    assert run.status == "succeeded"
    category = ModelVersion.objects.get(kind="category", run=run)
    assert category.metrics["flag_features"] == report.base_backbone
    # The catalog under the new weights (25 images), the base weights only for the late product.
    assert embedded == [(report.new_backbone, 25), (report.base_backbone, 1)]
    assert seen["features"].shape == (25, 2048)
    rows = [p.pk for p in Product.objects.order_by("id")]
    assert rows[-1] == late.pk
    np.testing.assert_allclose(seen["features"][:24], np.stack([base_of[pk] for pk in rows[:24]]), rtol=1e-6)


def test_flags_fall_back_to_the_new_features_when_the_base_weights_are_gone(tiny_labels, tmp_path, settings,
                                                                            django_capture_on_commit_callbacks):
    from curation.training.models import PipelineRun
    from curation.training.services import pipeline_run_execute, pipeline_run_request

    out = tmp_path / "ft.pt"
    report = backbone_finetune(out_path=out, options=FAST)
    settings.ML_WEIGHTS = str(out)
    with django_capture_on_commit_callbacks(execute=True):
        emb = embedding_set_build(activate=True)
    version = emb.model_version
    version.config = {**version.config, "base_weights": str(tmp_path / "deleted-base.pt")}
    version.save(update_fields=["config"])
    run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, forced=False, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        run = pipeline_run_execute(run_id=run.pk)
    assert run.status == "succeeded"
    assert ModelVersion.objects.get(kind="category", run=run).metrics["flag_features"] == report.new_backbone
