"""Reads for the crowd: training labels from aggregates, and the quality page's figures.

A *batch* on the quality page is a day: the local date of a pair's first crowd vote. Every vote on
that pair belongs to the pair's batch, so a pair is one unit of one batch even when its votes arrive
over several days.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from curation.crowd.agreement import GOLD_CI_LEVEL, GOLD_CI_Z, krippendorff_alpha_nominal, median, wilson_interval
from curation.crowd.models import AggregatedLabel, WorkerProfile
from curation.pairs.models import CandidatePair, PairLabel


def aggregated_training_labels() -> list[tuple[int, int, int, float]]:
    """(a_id, b_id, value 0/1, weight=confidence) for every pair the crowd settled.

    Escalated pairs are left out (a stylist's label settles them and comes through the pairs
    app), and so is any crowd pair a stylist labelled too: the stylist's label wins."""
    stylist_label = PairLabel.objects.filter(pair=OuterRef("pair_id"), kind=PairLabel.Kind.STYLIST)
    rows = (
        AggregatedLabel.objects.filter(
            escalated=False, pair__audience=CandidatePair.Audience.CROWD, pair__state=CandidatePair.State.DECIDED
        )
        .exclude(Exists(stylist_label))
        .order_by("pair_id")
        .values_list("pair__a_id", "pair__b_id", "value", "confidence")
    )
    return [(a, b, 1 if value == PairLabel.Value.COMPLEMENTARY else 0, float(conf)) for a, b, value, conf in rows]


def _local_day(moment) -> date:
    return timezone.localtime(moment).date()


def crowd_quality() -> dict:
    """Everything /crowd/quality/ and GET /api/crowd/quality/ show, as plain JSON-able data."""
    k = settings.CROWD_VOTES_PER_PAIR
    min_ms = settings.CROWD_MIN_SECONDS_PER_DECISION * 1000
    today = timezone.localdate()
    profiles = {p.user_id: p for p in WorkerProfile.objects.all()}
    suspended = {uid for uid, p in profiles.items() if p.is_suspended}
    aggregates = dict(AggregatedLabel.objects.values_list("pair_id", "value"))

    labels = list(
        PairLabel.objects.filter(kind=PairLabel.Kind.CROWD)
        .order_by("created_at", "id")
        .values_list("user_id", "user__username", "pair_id", "pair__is_gold", "value", "duration_ms", "created_at", "gold_correct")
    )

    per_worker: dict[int, dict] = {}
    durations: dict[int, list[int]] = defaultdict(list)
    worker_days: dict[int, set[date]] = defaultdict(set)
    per_day: Counter = Counter()
    pair_first_day: dict[int, date] = {}
    pair_values: dict[int, list[str]] = defaultdict(list)

    for user_id, username, pair_id, is_gold, value, duration_ms, created_at, gold_correct in labels:
        day = _local_day(created_at)
        per_day[day] += 1
        worker_days[user_id].add(day)
        w = per_worker.setdefault(
            user_id,
            {"user_id": user_id, "username": username, "decisions": 0, "today": 0, "gold_answered": 0, "gold_correct": 0,
             "agree": 0, "compared": 0, "too_fast": 0},
        )
        w["decisions"] += 1
        w["today"] += day == today
        if duration_ms is not None:
            durations[user_id].append(duration_ms)
            w["too_fast"] += duration_ms < min_ms
        if gold_correct is not None:
            w["gold_answered"] += 1
            w["gold_correct"] += bool(gold_correct)
        if not is_gold and pair_id in aggregates:
            w["compared"] += 1
            w["agree"] += value == aggregates[pair_id]
        pair_first_day.setdefault(pair_id, day)
        if user_id not in suspended:
            pair_values[pair_id].append(value)

    workers = []
    for user_id, w in per_worker.items():
        profile = profiles.get(user_id)
        low, high = wilson_interval(w["gold_correct"], w["gold_answered"], z=GOLD_CI_Z)
        med_ms = median(durations[user_id])
        active_days = len(worker_days[user_id])
        workers.append(
            {
                **w,
                "status": profile.status if profile else WorkerProfile.Status.ACTIVE,
                "suspended_reason": profile.suspended_reason if profile else "",
                "per_active_day": round(w["decisions"] / active_days, 1) if active_days else 0.0,
                "gold_accuracy": (w["gold_correct"] / w["gold_answered"]) if w["gold_answered"] else None,
                "gold_ci_low": low if w["gold_answered"] else None,
                "gold_ci_high": high if w["gold_answered"] else None,
                "agreement": (w["agree"] / w["compared"]) if w["compared"] else None,
                "median_seconds": None if med_ms is None else med_ms / 1000.0,
                "too_fast_share": (w["too_fast"] / len(durations[user_id])) if durations[user_id] else 0.0,
            }
        )
    workers.sort(key=lambda w: (w["status"] != WorkerProfile.Status.SUSPENDED, -w["decisions"], w["username"]))

    units_by_day: dict[date, list[list[str]]] = defaultdict(list)
    for pair_id, values in pair_values.items():
        units_by_day[pair_first_day[pair_id]].append(values)
    batches = []
    for day in sorted(units_by_day):
        units = units_by_day[day]
        batches.append(
            {
                "batch": day.isoformat(),
                "alpha": krippendorff_alpha_nominal(units),
                "pairs": sum(1 for u in units if len(u) >= 2),
                "votes": sum(len(u) for u in units),
            }
        )

    crowd_pairs = CandidatePair.objects.filter(audience=CandidatePair.Audience.CROWD, is_gold=False)
    all_aggregates = AggregatedLabel.objects.all()
    return {
        "votes_per_pair": k,
        "min_seconds_per_decision": settings.CROWD_MIN_SECONDS_PER_DECISION,
        "gold_ci_level": GOLD_CI_LEVEL,
        "alpha_overall": krippendorff_alpha_nominal(pair_values.values()),
        "batches": batches,
        "workers": workers,
        "labels_per_day": [{"day": d.isoformat(), "count": per_day[d]} for d in sorted(per_day)],
        "totals": {
            "votes": len(labels),
            "valid_votes": sum(1 for row in labels if row[0] not in suspended),
            "too_fast_votes": sum(w["too_fast"] for w in per_worker.values()),
            "open_pairs": crowd_pairs.filter(state=CandidatePair.State.OPEN, crowd_votes__lt=k).count(),
            "awaiting_aggregation": crowd_pairs.filter(state=CandidatePair.State.OPEN, crowd_votes__gte=k).count(),
            "settled_pairs": all_aggregates.filter(escalated=False).count(),
            "escalated_pairs": all_aggregates.filter(escalated=True).count(),
            "methods_disagree": sum(1 for v, m in all_aggregates.values_list("value", "majority_value") if m and v != m),
            "gold_pairs": CandidatePair.objects.filter(is_gold=True).count(),
            "workers_active": sum(1 for w in workers if w["status"] == WorkerProfile.Status.ACTIVE),
            "workers_suspended": len(suspended),
        },
    }
