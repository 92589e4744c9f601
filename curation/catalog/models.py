"""Catalog rows. Business rules live in services.py; these classes stay thin."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Category(models.Model):
    """A node of the category tree, e.g. Apparel > Topwear > Shirts (levels 0, 1, 2)."""

    name = models.CharField(max_length=100)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    level = models.PositiveSmallIntegerField(default=0)
    # "Apparel > Topwear > Shirts": unique, and what imports and pickers match on.
    path = models.CharField(max_length=400, unique=True)

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="category_unique_name_per_parent"),
            models.UniqueConstraint(fields=["name"], condition=Q(parent__isnull=True), name="category_unique_root_name"),
        ]

    def __str__(self) -> str:
        return self.path

    def ancestor_at(self, level: int) -> "Category":
        node = self
        while node.level > level and node.parent_id is not None:
            node = node.parent
        return node


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=300)
    brand = models.CharField(max_length=120, blank=True)
    gender = models.CharField(max_length=32, blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    colour = models.CharField(max_length=60, blank=True, db_index=True)
    season = models.CharField(max_length=40, blank=True)
    usage = models.CharField(max_length=60, blank=True)
    # Products that are colour variants of one model share it; evaluation splits by it.
    product_model = models.CharField(max_length=120, blank=True, db_index=True)
    attributes = models.JSONField(default=dict, blank=True)
    in_stock = models.BooleanField(default=True, db_index=True)
    image = models.ImageField(upload_to="products/", max_length=300, blank=True)
    image_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    image_width = models.PositiveIntegerField(null=True, blank=True)
    image_height = models.PositiveIntegerField(null=True, blank=True)
    # Set when a merchandiser confirms or fixes the category; training weighs these up.
    category_verified_at = models.DateTimeField(null=True, blank=True)
    colour_verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        indexes = [models.Index(fields=["category", "in_stock"], name="product_category_stock")]

    def __str__(self) -> str:
        return f"{self.sku} {self.title}"


class CategoryChange(models.Model):
    """Audit row for every change of a product's category (import, review, admin)."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="category_changes")
    old_category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    new_category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.CharField(max_length=300, blank=True)
    flag = models.ForeignKey("review.CatalogFlag", null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.product.sku}: {self.old_category} -> {self.new_category}"


class AttributeChange(models.Model):
    """Audit row for a change of a cross-learned attribute (colour) made in review."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="attribute_changes")
    attribute = models.CharField(max_length=40)
    old_value = models.CharField(max_length=120, blank=True)
    new_value = models.CharField(max_length=120)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    changed_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=300, blank=True)
    flag = models.ForeignKey("review.CatalogFlag", null=True, blank=True, on_delete=models.SET_NULL, related_name="attribute_changes")

    class Meta:
        ordering = ["-changed_at", "-id"]


class DemoTruth(models.Model):
    """Hidden facts of a generated demo product: its true category and the style-rule inputs.

    Only make_demo_catalog writes these; tests and the demo evaluation read them to check that the
    review finds the seeded wrong categories and that the pair model learns the style rule.
    """

    product = models.OneToOneField(Product, on_delete=models.CASCADE, related_name="demo_truth")
    true_category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    miscategorised = models.BooleanField(default=False, db_index=True)
    formality = models.PositiveSmallIntegerField()
    hue = models.FloatField()
    pattern = models.CharField(max_length=20)
