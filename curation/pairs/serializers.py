"""Request and response shapes of the pairs API (the labeling JSON of docs/contracts.md)."""

from __future__ import annotations

from rest_framework import serializers

from curation.pairs.models import PairLabel


class ProductCardSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    title = serializers.CharField()
    brand = serializers.CharField()
    category = serializers.CharField()
    colour = serializers.CharField()
    image_url = serializers.CharField()


class PairSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    a = ProductCardSerializer()
    b = ProductCardSerializer()
    source = serializers.CharField(required=False, help_text="Stylists only: similar, uncertain, exploration, escalated, manual.")
    model_score = serializers.FloatField(required=False, allow_null=True, help_text="Stylists only: the active pair model's score.")


class CountsSerializer(serializers.Serializer):
    today = serializers.IntegerField(help_text="Decisions made today by the caller.")
    queue_left = serializers.IntegerField(help_text="Open pairs left, counted up to a cap.")
    queue_left_capped = serializers.BooleanField(help_text="True when there are more than queue_left.")


class NextSerializer(serializers.Serializer):
    pair = PairSerializer(allow_null=True)
    prefetch = PairSerializer(allow_null=True)
    counts = CountsSerializer()
    empty_reason = serializers.CharField(allow_null=True)
    empty_code = serializers.CharField(allow_null=True, help_text="nothing_to_label, all_reserved or all_skipped_today.")


class SubmitSerializer(serializers.Serializer):
    pair_id = serializers.IntegerField()
    value = serializers.ChoiceField(choices=PairLabel.Value.values)
    reasons = serializers.ListField(child=serializers.ChoiceField(choices=PairLabel.REASON_TAGS), required=False, default=list)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    duration_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0, default=None)


class SubmitResultSerializer(serializers.Serializer):
    label_id = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when this pair was already labeled by the caller (idempotent).")
    counts = CountsSerializer()


class SkipSerializer(serializers.Serializer):
    pair_id = serializers.IntegerField()


class SkipResultSerializer(serializers.Serializer):
    counts = CountsSerializer()


class UndoResultSerializer(serializers.Serializer):
    pair = PairSerializer()
    counts = CountsSerializer()


class OutfitSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    product_ids = serializers.ListField(child=serializers.IntegerField(), write_only=True)
    external_id = serializers.CharField(read_only=True)
    source = serializers.CharField(read_only=True)
    created_by = serializers.CharField(read_only=True, allow_null=True)
    created_at = serializers.CharField(read_only=True)
    updated_at = serializers.CharField(read_only=True)
    items = ProductCardSerializer(many=True, read_only=True)


class OutfitPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    product_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
