"""The models page: versions side by side, the live run, training curves, activate / roll back."""

from __future__ import annotations

from django.shortcuts import render

from curation.accounts.roles import MANAGE_MODELS, VIEW_MODELS, has_role, role_required
from curation.training import selectors
from curation.training.models import ModelVersion
from curation.training.services.registry import SERVED_KINDS

# The figures shown per kind in the versions table, in this order.
METRIC_COLUMNS = {
    "category": [("oof_accuracy", "OOF accuracy"), ("oof_top3_accuracy", "OOF top-3"), ("classes", "classes")],
    "siamese": [("pair_auc", "pair AUC"), ("baseline_auc", "category baseline"), ("cosine_auc", "cosine"), ("val_auc", "val AUC"), ("label_auc", "label AUC"),
                ("side_attributes", "side attributes")],
    "outfit": [("fitb", "FITB-4"), ("fitb_pair_model", "FITB-4 (pair model)"), ("active_fitb", "FITB-4 previous"),
               ("looks_scored_by", "looks scored by")],
    # Held-out figures that finetune_backbone recorded beside its weights (none for other weights).
    "backbone": [("frozen_holdout_accuracy", "held-out accuracy before"), ("holdout_accuracy", "held-out accuracy"),
                 ("frozen_knn_precision_at_10", "k-NN p@10 before"), ("knn_precision_at_10", "k-NN p@10")],
}
# The page's sections: the served models, then the feature spaces they were trained on. A
# backbone is chosen by the ML_WEIGHTS setting, not activated here, so its rows have no buttons.
PAGE_KINDS = (*SERVED_KINDS, ModelVersion.Kind.BACKBONE)


def _metric_cell(value):
    """A metric as the table shows it: lists joined, codes like "pair_model" in words."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or None
    if isinstance(value, str):
        return value.replace("_", " ")
    return value


@role_required(*VIEW_MODELS)
def models_page(request):
    versions = list(selectors.versions_for_page())
    by_kind = {kind: [] for kind in PAGE_KINDS}
    for version in versions:
        if version.kind in by_kind:
            columns = METRIC_COLUMNS[version.kind]
            version.metric_cells = [_metric_cell(version.metrics.get(key)) for key, _ in columns]
            by_kind[version.kind].append(version)
    sections = [
        {"kind": kind, "label": ModelVersion.Kind(kind).label, "columns": [label for _, label in METRIC_COLUMNS[kind]], "versions": rows}
        for kind, rows in by_kind.items()
    ]
    context = {
        "sections": sections,
        "runs": selectors.runs_recent(limit=10),
        "embedding_set": selectors.active_embedding_set(),
        "can_manage": has_role(request.user, *MANAGE_MODELS),
    }
    return render(request, "training/models.html", context)
