"""Catalog-error flags raised by the out-of-fold category (and colour) model."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class CatalogFlag(models.Model):
    class Kind(models.TextChoices):
        CATEGORY = "category", "Category"
        COLOUR = "colour", "Colour"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        FIXED = "fixed", "Fixed (prediction accepted)"
        RECATEGORISED = "recategorised", "Set to another value"
        KEPT = "kept", "Kept catalog value"
        SUPERSEDED = "superseded", "Superseded by a newer model"

    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="flags")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CATEGORY)
    state = models.CharField(max_length=14, choices=State.choices, default=State.OPEN, db_index=True)
    # Values as text: a category path for kind=category, a colour name for kind=colour.
    catalog_value = models.CharField(max_length=400)
    predicted_value = models.CharField(max_length=400)
    confidence = models.FloatField(db_index=True)  # probability of predicted_value
    # How far the catalog value is from the model's view along its category path (review.services
    # _path_ratios): 1 = agrees, 0.01 = the predicted path is 100x likelier. The queue's order.
    path_ratio = models.FloatField(default=1.0, db_index=True)
    top_predictions = models.JSONField(default=list)  # [{"value": ..., "probability": ...}] x3
    model_version = models.ForeignKey("training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="flags")
    decided_value = models.CharField(max_length=400, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["path_ratio", "-confidence", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "kind"], condition=Q(state="open"), name="flag_one_open_per_product_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.product.sku} {self.kind}: {self.catalog_value} -> {self.predicted_value} ({self.confidence:.2f})"
