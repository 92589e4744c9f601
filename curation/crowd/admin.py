"""Admin: reinstate (or suspend) crowd workers, read aggregates, send pairs to the crowd and mark
gold pairs. Every action calls a service; the admin never changes these rows by itself."""

from __future__ import annotations

from django.contrib import admin, messages

from curation.crowd import services
from curation.crowd.models import AggregatedLabel, CrowdPair, CrowdReservation, WorkerProfile


@admin.register(WorkerProfile)
class WorkerProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "status", "gold_correct", "gold_answered", "suspended_at", "suspended_reason", "reinstated_at", "reinstated_by")
    list_filter = ("status",)
    search_fields = ("user__username",)
    readonly_fields = (
        "user", "status", "gold_answered", "gold_correct", "suspended_at", "suspended_reason",
        "reinstated_by", "reinstated_at", "gold_counted_since",
    )
    actions = ["reinstate_selected", "suspend_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # profiles appear with a worker's first request

    @admin.action(description="Reinstate selected suspended workers (their votes count again)")
    def reinstate_selected(self, request, queryset):
        done = 0
        for profile in queryset.filter(status=WorkerProfile.Status.SUSPENDED):
            services.worker_reinstate(profile=profile, by=request.user)
            done += 1
        skipped = queryset.count() - done
        self.message_user(request, f"Reinstated {done} worker(s)." + (f" {skipped} were not suspended." if skipped else ""), messages.SUCCESS)

    @admin.action(description="Suspend selected workers (votes kept, excluded from aggregation)")
    def suspend_selected(self, request, queryset):
        done = 0
        for profile in queryset.filter(status=WorkerProfile.Status.ACTIVE):
            services.worker_suspend(profile=profile, reason=f"suspended by {request.user.username} in the admin")
            done += 1
        self.message_user(request, f"Suspended {done} worker(s).", messages.SUCCESS)


@admin.register(AggregatedLabel)
class AggregatedLabelAdmin(admin.ModelAdmin):
    list_display = ("pair", "value", "confidence", "method", "votes", "majority_value", "majority_share", "escalated", "escalation_reason", "computed_at")
    list_filter = ("method", "escalated", "value")
    readonly_fields = [f.name for f in AggregatedLabel._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CrowdReservation)
class CrowdReservationAdmin(admin.ModelAdmin):
    list_display = ("pair", "user", "reserved_at", "reserved_until")
    raw_id_fields = ("pair", "user")


@admin.register(CrowdPair)
class CrowdPairAdmin(admin.ModelAdmin):
    list_display = ("id", "a", "b", "source", "audience", "state", "crowd_votes", "is_gold", "priority")
    list_filter = ("audience", "state", "is_gold", "source")
    search_fields = ("a__sku", "b__sku")
    actions = ["send_to_crowd", "mark_gold"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in CrowdPair._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Send selected open stylist-queue pairs to the crowd")
    def send_to_crowd(self, request, queryset):
        report = services.crowd_enqueue(pair_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"Sent {len(report.moved)} pair(s) to the crowd.", messages.SUCCESS)
        for pair_id, reason in list(report.skipped.items())[:20]:
            self.message_user(request, f"Pair {pair_id} not sent: {reason}.", messages.WARNING)

    @admin.action(description="Mark selected stylist-labelled pairs as gold questions")
    def mark_gold(self, request, queryset):
        ids = services.gold_pairs_mark(pair_ids=list(queryset.values_list("id", flat=True)))
        left = queryset.count() - len(ids)
        self.message_user(
            request,
            f"Marked {len(ids)} pair(s) as gold." + (f" {left} had no agreeing stylist label or were gold already." if left else ""),
            messages.SUCCESS,
        )
