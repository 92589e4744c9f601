"""Shapes of the discovery API: product cards, lists with their model version, score requests."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from rest_framework import serializers

from curation.discovery.selectors import Card


_SKU_PLACEHOLDER = "SKU-PLACEHOLDER"


@lru_cache(maxsize=1)
def _product_url_template() -> str:
    return reverse("discovery:product", args=[_SKU_PLACEHOLDER])


def product_page_url(sku: str) -> str:
    """reverse() once, then string formatting: a list of 50 cards would otherwise resolve 50 times."""
    return _product_url_template().replace(_SKU_PLACEHOLDER, quote(sku, safe=""))


def product_card(card: Card, score: float | None = None) -> dict:
    """The PRODUCT shape of docs/contracts.md plus stock, page url and (in ranked lists) score.

    Built by hand rather than through a Serializer: similar-item lists are the hot path.
    DiscoveryProductCardSerializer below documents the same shape for the schema.
    """
    answer = {
        "id": card.id,
        "sku": card.sku,
        "title": card.title,
        "brand": card.brand,
        "category": card.category,
        "colour": card.colour,
        "image_url": default_storage.url(card.image) if card.image else "",
        "in_stock": card.in_stock,
        "url": product_page_url(card.sku),
    }
    if score is not None:
        answer["score"] = round(float(score), 6)
    return answer


class DiscoveryProductCardSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    title = serializers.CharField()
    brand = serializers.CharField()
    category = serializers.CharField(help_text="Category path, e.g. 'Apparel > Topwear > Shirts'.")
    colour = serializers.CharField()
    image_url = serializers.CharField()
    in_stock = serializers.BooleanField()
    url = serializers.CharField(help_text="The product's discovery page.")
    score = serializers.FloatField(required=False, help_text="Cosine similarity or model score (ranked lists only).")


class DiscoveryProductListSerializer(serializers.Serializer):
    product = DiscoveryProductCardSerializer(required=False)
    model_version = serializers.IntegerField(allow_null=True, help_text="Version of the embeddings that produced the list.")
    results = DiscoveryProductCardSerializer(many=True)
    message = serializers.CharField(allow_null=True, help_text="Why the list is empty or short (no active model...).")


class DiscoverySlotSerializer(serializers.Serializer):
    slot = serializers.CharField()
    results = DiscoveryProductCardSerializer(many=True)


class DiscoveryOutfitSerializer(serializers.Serializer):
    items = DiscoveryProductCardSerializer(many=True)
    score = serializers.FloatField()
    model_version = serializers.IntegerField()


class DiscoveryCompleteTheLookSerializer(serializers.Serializer):
    product = DiscoveryProductCardSerializer()
    pair_model_version = serializers.IntegerField(allow_null=True)
    outfit_model_version = serializers.IntegerField(allow_null=True)
    embedding_version = serializers.IntegerField(allow_null=True)
    slots = DiscoverySlotSerializer(many=True)
    outfit = DiscoveryOutfitSerializer(allow_null=True)
    message = serializers.CharField(allow_null=True)
    outfit_message = serializers.CharField(allow_null=True)


class DiscoveryListQuerySerializer(serializers.Serializer):
    k = serializers.IntegerField(default=12, min_value=1, help_text="How many products (at most DISCOVERY_MAX_RESULTS).")
    in_stock = serializers.BooleanField(default=True, help_text="Only in-stock products (similar items).")

    def validate_k(self, value: int) -> int:
        if value > settings.DISCOVERY_MAX_RESULTS:
            raise serializers.ValidationError(f"k may be at most {settings.DISCOVERY_MAX_RESULTS}.")
        return value


class DiscoveryCompleteQuerySerializer(serializers.Serializer):
    per_slot = serializers.IntegerField(default=4, min_value=1, max_value=12, help_text="Items per category slot.")


class DiscoveryPhotoSearchSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="JPEG, PNG or WebP; at most MAX_IMAGE_BYTES and MAX_IMAGE_PIXELS.")
    k = serializers.IntegerField(default=12, min_value=1)
    category = serializers.ListField(
        child=serializers.CharField(), required=False, default=list,
        help_text="Restrict to these categories (ids or paths, with their descendants); repeat the field.",
    )
    store = serializers.BooleanField(default=False, help_text="Keep the uploaded photo (it is discarded otherwise).")

    def validate_k(self, value: int) -> int:
        if value > settings.DISCOVERY_MAX_RESULTS:
            raise serializers.ValidationError(f"k may be at most {settings.DISCOVERY_MAX_RESULTS}.")
        return value


class DiscoveryPhotoSearchResultSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    results = DiscoveryProductCardSerializer(many=True)
    message = serializers.CharField(allow_null=True)
    stored = serializers.CharField(allow_null=True, help_text="Storage path of the kept photo, when store=1.")


class DiscoveryPairScoreRequestSerializer(serializers.Serializer):
    sku_a = serializers.CharField(max_length=64)
    sku_b = serializers.CharField(max_length=64)


class DiscoveryPairScoreSerializer(serializers.Serializer):
    sku_a = serializers.CharField()
    sku_b = serializers.CharField()
    score = serializers.FloatField(help_text="Probability that the two go together, f(a,b) = f(b,a).")
    model_version = serializers.IntegerField()


class DiscoveryOutfitScoreRequestSerializer(serializers.Serializer):
    skus = serializers.ListField(child=serializers.CharField(max_length=64), min_length=2, max_length=12)


class DiscoveryOutfitScoreSerializer(serializers.Serializer):
    skus = serializers.ListField(child=serializers.CharField())
    score = serializers.FloatField(help_text="Outfit compatibility f(i,j,k,...).")
    model_version = serializers.IntegerField()


class DiscoveryErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)
