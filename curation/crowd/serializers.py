"""Request and response shapes of the crowd API: the labeling JSON of docs/contracts.md, blind
(no source, no model score, no other votes), plus quality and administration endpoints."""

from __future__ import annotations

from rest_framework import serializers

from curation.pairs.serializers import ProductCardSerializer, SubmitSerializer


class BlindPairSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    a = ProductCardSerializer()
    b = ProductCardSerializer()


class CrowdCountsSerializer(serializers.Serializer):
    today = serializers.IntegerField(help_text="Decisions the worker made today.")
    queue_left = serializers.IntegerField(help_text="Pairs still needing votes that this worker has not seen.")
    queue_left_capped = serializers.BooleanField(help_text="Always false: the crowd count is exact.")
    daily_cap = serializers.IntegerField(help_text="CROWD_DAILY_CAP: decisions allowed per worker per day.")


class CrowdNextSerializer(serializers.Serializer):
    pair = BlindPairSerializer(allow_null=True)
    prefetch = BlindPairSerializer(allow_null=True)
    counts = CrowdCountsSerializer()
    empty_reason = serializers.CharField(allow_null=True)
    empty_code = serializers.CharField(allow_null=True, help_text="suspended, daily_cap or nothing_to_label.")


class CrowdSubmitSerializer(SubmitSerializer):
    """The same decision body as the stylist queue's (docs/contracts.md)."""


class CrowdSubmitResultSerializer(serializers.Serializer):
    label_id = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when the worker had already voted on this pair (idempotent).")
    counts = CrowdCountsSerializer()


class CrowdSkipSerializer(serializers.Serializer):
    pair_id = serializers.IntegerField()


class CrowdSkipResultSerializer(serializers.Serializer):
    counts = CrowdCountsSerializer()


class CrowdUndoResultSerializer(serializers.Serializer):
    pair = BlindPairSerializer()
    counts = CrowdCountsSerializer()


class WorkerStandingSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="active or suspended.")
    message = serializers.CharField(allow_null=True)
    counts = CrowdCountsSerializer()


class WorkerQualitySerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    status = serializers.CharField()
    suspended_reason = serializers.CharField(allow_blank=True)
    decisions = serializers.IntegerField()
    today = serializers.IntegerField()
    per_active_day = serializers.FloatField(help_text="Decisions per day the worker was active.")
    gold_answered = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_ci_low = serializers.FloatField(allow_null=True)
    gold_ci_high = serializers.FloatField(allow_null=True)
    agreement = serializers.FloatField(allow_null=True, help_text="Share of votes matching the aggregated label.")
    median_seconds = serializers.FloatField(allow_null=True)
    too_fast = serializers.IntegerField(help_text="Answers faster than CROWD_MIN_SECONDS_PER_DECISION.")
    too_fast_share = serializers.FloatField()


class BatchAgreementSerializer(serializers.Serializer):
    batch = serializers.CharField(help_text="Local date of the first crowd vote of the batch's pairs.")
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha (nominal); null when undefined.")
    pairs = serializers.IntegerField(help_text="Pairs with at least two valid votes.")
    votes = serializers.IntegerField()


class DayCountSerializer(serializers.Serializer):
    day = serializers.CharField()
    count = serializers.IntegerField()


class QualitySerializer(serializers.Serializer):
    votes_per_pair = serializers.IntegerField()
    min_seconds_per_decision = serializers.FloatField()
    gold_ci_level = serializers.CharField()
    alpha_overall = serializers.FloatField(allow_null=True)
    batches = BatchAgreementSerializer(many=True)
    workers = WorkerQualitySerializer(many=True)
    labels_per_day = DayCountSerializer(many=True)
    totals = serializers.DictField(child=serializers.IntegerField())


class WorkerProfileSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    status = serializers.CharField()
    gold_answered = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    suspended_at = serializers.DateTimeField(allow_null=True)
    suspended_reason = serializers.CharField(allow_blank=True)
    reinstated_at = serializers.DateTimeField(allow_null=True)


class EnqueueSerializer(serializers.Serializer):
    pair_ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True, default=None)
    limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)


class EnqueueResultSerializer(serializers.Serializer):
    moved = serializers.ListField(child=serializers.IntegerField())
    skipped = serializers.DictField(child=serializers.CharField(), help_text="pair id -> why it was not moved.")


class AggregateResultSerializer(serializers.Serializer):
    aggregated = serializers.IntegerField()
    decided = serializers.IntegerField()
    escalated = serializers.IntegerField()
    method = serializers.CharField()
