"""JSON shapes of the review API."""

from __future__ import annotations

from rest_framework import serializers

from curation.review.models import CatalogFlag
from curation.review.services import ACCEPT, ACTIONS, KEEP


class TopPredictionSerializer(serializers.Serializer):
    value = serializers.CharField()
    probability = serializers.FloatField()


class FlagSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku", read_only=True)
    title = serializers.CharField(source="product.title", read_only=True)
    image_url = serializers.SerializerMethodField()
    history_url = serializers.SerializerMethodField()
    top_predictions = TopPredictionSerializer(many=True, read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None)

    class Meta:
        model = CatalogFlag
        fields = [
            "id", "kind", "state", "product", "sku", "title", "image_url", "history_url", "catalog_value",
            "predicted_value", "confidence", "path_ratio", "top_predictions", "model_version", "decided_value", "decided_by",
            "decided_at", "created_at",
        ]
        read_only_fields = fields

    def get_image_url(self, flag: CatalogFlag) -> str:
        return flag.product.image.url if flag.product.image else ""

    def get_history_url(self, flag: CatalogFlag) -> str:
        from django.urls import reverse

        return reverse("review:history", args=[flag.product.sku])


class NeighbourSerializer(serializers.Serializer):
    sku = serializers.CharField()
    title = serializers.CharField()
    value = serializers.CharField()
    score = serializers.FloatField()
    image_url = serializers.CharField()


class VoteSerializer(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField()


class EvidenceSerializer(serializers.Serializer):
    available = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)
    neighbours = NeighbourSerializer(many=True)
    votes = VoteSerializer(many=True)


class FlagDetailSerializer(serializers.Serializer):
    flag = FlagSerializer()
    evidence = EvidenceSerializer()


class StatsSerializer(serializers.Serializer):
    open = serializers.IntegerField()
    fixed = serializers.IntegerField()
    kept = serializers.IntegerField()
    decided = serializers.IntegerField()
    precision = serializers.FloatField(allow_null=True, help_text="fixed / decided; null before any decision")


class DecideRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTIONS)
    value = serializers.CharField(required=False, allow_blank=True,
                                  help_text="with action=choose: a category id or full path, or a colour name")

    def validate(self, attrs):
        if attrs["action"] == "choose" and not attrs.get("value"):
            raise serializers.ValidationError({"value": "required when action is 'choose'"})
        return attrs


class DecideResponseSerializer(serializers.Serializer):
    flag = FlagSerializer()
    stats = StatsSerializer()


class BulkDecideRequestSerializer(serializers.Serializer):
    flag_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000)
    action = serializers.ChoiceField(choices=(ACCEPT, KEEP), default=ACCEPT)


class BulkDecideResponseSerializer(serializers.Serializer):
    decided = serializers.IntegerField()
    flags = FlagSerializer(many=True)
    stats = StatsSerializer()
