"""The crowd queue's verbs: serve pairs, take votes, check gold answers, suspend and reinstate
workers, aggregate votes, escalate doubtful pairs to stylists, and send pairs to the crowd.

Rules in one place:
- A crowd pair (audience=crowd, state=open, not gold) needs CROWD_VOTES_PER_PAIR valid votes from
  different workers. "Valid" means cast by a worker who is not suspended; ``crowd_votes`` on the
  pair caches that count and is recounted whenever a worker's standing changes.
- The queue prefers pairs with the most votes already (work finishes instead of spreading thin),
  then higher priority. A worker never gets a pair they voted on or skipped.
- Up to k - crowd_votes workers may hold a pair at once (CrowdReservation: the stylist queue's
  CandidatePair.reserved_by admits one holder and only open pairs, while a crowd pair needs k
  holders and gold pairs are decided ones). Reservations are created under the pair's row lock
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent workers take different rows instead of
  queueing) after re-counting, and a vote re-checks the count under the same lock: a pair never
  collects more than k valid votes.
- Gold pairs (stylist-decided, ``is_gold``) are mixed in with probability CROWD_GOLD_RATE per
  served pair, in the same JSON as any other pair. A worker's gold accuracy decides suspension:
  after CROWD_MIN_GOLD_ANSWERS, if the upper end of the Wilson interval is below
  CROWD_MIN_GOLD_ACCURACY (so a good worker's unlucky streak is not enough).
- Aggregation (crowd-kit's Dawid-Skene with gold truths clamped, confidences smoothed as
  aggregation.py explains; majority kept alongside) writes an AggregatedLabel per complete pair.
  A confidence below CROWD_ESCALATE_BELOW, a tie, or the two methods disagreeing sends the pair to
  the stylist queue (audience=stylist, source=escalated), where a stylist's label settles it.
- A worker's suspension makes their votes stop counting (kept, never deleted): pairs they voted on
  are recounted, and settled pairs left with fewer than k valid votes reopen for more votes.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from curation.crowd import aggregation
from curation.crowd.agreement import GOLD_CI_Z, wilson_interval
from curation.crowd.models import AggregatedLabel, CrowdReservation, WorkerProfile
from curation.pairs.models import CandidatePair, PairLabel, PairSkip
from curation.pairs.services import LabelError, decision_clean

log = logging.getLogger(__name__)

# A worker holds the pair on screen and the prefetched one.
HELD_PER_WORKER = 2
# Escalated pairs go to the top of the stylist queue, the least confident first.
ESCALATED_PRIORITY_BASE = 1.0

SUSPENDED_MESSAGE = (
    "Thank you for your work so far. Your recent answers did not match our reference answers often "
    "enough, so your access to the crowd queue is paused. An administrator will review it; you do "
    "not need to do anything."
)


class CrowdError(Exception):
    """A request the crowd queue refuses, with a message meant for the worker."""

    status_code = 400


class InvalidVote(CrowdError):
    status_code = 400


class WorkerSuspended(CrowdError):
    status_code = 403


class DailyCapReached(CrowdError):
    status_code = 429


class PairNotAvailable(CrowdError):
    status_code = 409


class NothingToUndo(CrowdError):
    status_code = 409


EMPTY_SUSPENDED = "suspended"
EMPTY_DAILY_CAP = "daily_cap"
EMPTY_NOTHING = "nothing_to_label"


@dataclass
class QueueState:
    pair: CandidatePair | None
    prefetch: CandidatePair | None
    today: int
    queue_left: int
    empty_reason: str | None = None
    empty_code: str | None = None  # EMPTY_SUSPENDED, EMPTY_DAILY_CAP or EMPTY_NOTHING


@dataclass
class VoteOutcome:
    label: PairLabel
    created: bool
    today: int
    pair_completed: bool = False
    worker_suspended: bool = False

    @property
    def queue_left(self) -> int:
        # Computed on demand: the API shows it, batch callers (imports, simulations) need not pay.
        return 0 if self.worker_suspended else crowd_queue_left(worker=self.label.user)


@dataclass
class AggregationReport:
    aggregated: int = 0
    decided: int = 0
    escalated: int = 0
    method: str = "dawid_skene"
    escalated_pair_ids: list[int] = field(default_factory=list)


@dataclass
class EnqueueReport:
    moved: list[int]
    skipped: dict[int, str]


# --- small helpers ------------------------------------------------------------------------------


def _votes_needed() -> int:
    return settings.CROWD_VOTES_PER_PAIR


def _start_of_today() -> datetime:
    now = timezone.localtime()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _reservation_seconds() -> int:
    return settings.PAIR_RESERVATION_SECONDS


def crowd_decisions_today(*, worker) -> int:
    return PairLabel.objects.filter(user=worker, kind=PairLabel.Kind.CROWD, created_at__gte=_start_of_today()).count()


def _valid_crowd_labels():
    """Crowd votes that count: not cast by a suspended worker."""
    return PairLabel.objects.filter(kind=PairLabel.Kind.CROWD).exclude(user__crowd_profile__status=WorkerProfile.Status.SUSPENDED)


def _lockable(qs):
    """Row locks where the database has them. PostgreSQL skips rows other workers are locking
    right now, so concurrent requests fan out over different pairs; SQLite has no row locks and
    serialises writers on its database lock instead."""
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True, of=("self",))
    return qs


# The queue's hot path is written in SQL: built through the ORM, its three correlated subqueries
# cost more Python time to compile than the database needs to run them, on every request.
def _queue_sql(*, select: str, gold: bool, capacity: bool, exclude_ids=(), lock: bool = False) -> str:
    pair, label = CandidatePair._meta.db_table, PairLabel._meta.db_table
    skip, hold = PairSkip._meta.db_table, CrowdReservation._meta.db_table
    where = ["p.is_gold = %(gold)s"]
    if not gold:
        where += ["p.audience = %(audience)s", "p.state = %(state)s"]
    if capacity:
        # Valid votes plus workers holding it now must leave a place free.
        where.append(f"p.crowd_votes + (SELECT COUNT(*) FROM {hold} r WHERE r.pair_id = p.id AND r.reserved_until > %(now)s) < %(k)s")
    elif not gold:
        where.append("p.crowd_votes < %(k)s")
    # Never a pair this worker voted on or skipped, nor one they hold already.
    where += [
        f"NOT EXISTS (SELECT 1 FROM {label} l WHERE l.pair_id = p.id AND l.user_id = %(user)s)",
        f"NOT EXISTS (SELECT 1 FROM {skip} s WHERE s.pair_id = p.id AND s.user_id = %(user)s)",
        f"NOT EXISTS (SELECT 1 FROM {hold} h WHERE h.pair_id = p.id AND h.user_id = %(user)s AND h.reserved_until > %(now)s)",
    ]
    if exclude_ids:
        where.append(f"p.id NOT IN ({', '.join(str(int(i)) for i in exclude_ids)})")
    sql = f"SELECT {select} FROM {pair} p WHERE " + " AND ".join(where)
    if select != "COUNT(*)":
        # Pairs closest to done first, so work finishes instead of spreading thin.
        sql += " ORDER BY p.crowd_votes DESC, p.priority DESC, p.id" if not gold else " ORDER BY p.id"
        sql += " LIMIT 1" if not gold else " LIMIT 500"
        if lock and connection.features.has_select_for_update_skip_locked:
            sql += " FOR UPDATE OF p SKIP LOCKED"
    return sql


def _queue_params(worker, now: datetime, *, gold: bool) -> dict:
    return {
        "gold": gold,
        "audience": CandidatePair.Audience.CROWD.value,
        "state": CandidatePair.State.OPEN.value,
        "k": _votes_needed(),
        "user": worker.pk,
        "now": connection.ops.adapt_datetimefield_value(now),
    }


def _queue_fetch(sql: str, params: dict) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def crowd_queue_left(*, worker, now: datetime | None = None, held: int | None = None) -> int:
    """Pairs still needing votes that this worker has neither voted on, skipped nor holds, plus the
    ones they hold. (Places held by others are not subtracted: a lapsed hold frees them again.)"""
    now = now or timezone.now()
    sql = _queue_sql(select="COUNT(*)", gold=False, capacity=False)
    open_for_worker = _queue_fetch(sql, _queue_params(worker, now, gold=False))[0]
    if held is None:
        held = CrowdReservation.objects.filter(user=worker, reserved_until__gt=now, pair__is_gold=False).count()
    return open_for_worker + held


def gold_truth(*, pair: CandidatePair) -> str | None:
    """The stylists' answer for a gold pair, or None if they disagree or never labelled it."""
    values = set(PairLabel.objects.filter(pair=pair, kind=PairLabel.Kind.STYLIST).values_list("value", flat=True))
    return values.pop() if len(values) == 1 else None


def worker_profile_get(*, user) -> WorkerProfile:
    profile, _ = WorkerProfile.objects.get_or_create(user=user)
    return profile


def _profile_for_update(user) -> WorkerProfile:
    try:
        return WorkerProfile.objects.select_for_update().get(user=user)
    except WorkerProfile.DoesNotExist:
        worker_profile_get(user=user)
        return WorkerProfile.objects.select_for_update().get(user=user)


def worker_is_suspended(*, user) -> bool:
    return WorkerProfile.objects.filter(user=user, status=WorkerProfile.Status.SUSPENDED).exists()


def _cap_message(today: int) -> str:
    return (
        f"You have made {today} decisions today, the daily limit is {settings.CROWD_DAILY_CAP}. "
        "Thank you! The queue opens again tomorrow."
    )


# --- the queue ----------------------------------------------------------------------------------


def _reserve(pair_id: int, worker, now: datetime) -> CandidatePair:
    until = now + timedelta(seconds=_reservation_seconds())
    # A lapsed reservation of the same worker on the same pair is renewed rather than duplicated.
    if not CrowdReservation.objects.filter(pair_id=pair_id, user=worker).update(reserved_at=now, reserved_until=until):
        CrowdReservation.objects.create(pair_id=pair_id, user=worker, reserved_at=now, reserved_until=until)
    return CandidatePair.objects.select_related("a__category", "b__category").get(pk=pair_id)


def _reserve_fresh(pair_id: int, worker, now: datetime) -> CandidatePair:
    """Like ``_reserve`` for a pair the worker holds no reservation on (the queue query excluded
    live ones and ``_held_pairs`` removed lapsed ones): one INSERT instead of an UPDATE first."""
    until = now + timedelta(seconds=_reservation_seconds())
    CrowdReservation.objects.create(pair_id=pair_id, user=worker, reserved_at=now, reserved_until=until)
    return CandidatePair.objects.select_related("a__category", "b__category").get(pk=pair_id)


def _reserve_work(worker, now: datetime) -> CandidatePair | None:
    """Reserve the best open crowd pair for ``worker`` under its row lock, re-checking capacity."""
    k = _votes_needed()
    params = _queue_params(worker, now, gold=False)
    tried: list[int] = []
    for _attempt in range(20):
        found = _queue_fetch(_queue_sql(select="p.id", gold=False, capacity=True, exclude_ids=tried, lock=True), params)
        if not found:
            return None
        pair_id = found[0]
        if not connection.features.has_select_for_update_skip_locked:
            # No row locks (SQLite): the database lock serialises writers, and a re-read inside
            # this transaction would only see the same snapshot.
            return _reserve_fresh(pair_id, worker, now)
        # Fresh counts under the lock: another worker may have voted or reserved since our snapshot.
        votes, holds = (
            CandidatePair.objects.filter(pk=pair_id)
            .annotate(holds=Count("crowd_reservations", filter=Q(crowd_reservations__reserved_until__gt=now) & ~Q(crowd_reservations__user=worker)))
            .values_list("crowd_votes", "holds")
            .get()
        )
        if votes + holds >= k:
            tried.append(pair_id)
            continue
        return _reserve_fresh(pair_id, worker, now)
    return None


def _work_exists(worker, now: datetime) -> bool:
    return bool(_queue_fetch(_queue_sql(select="p.id", gold=False, capacity=False), _queue_params(worker, now, gold=False)))


def _reserve_gold(worker, now: datetime, rng: random.Random) -> CandidatePair | None:
    ids = _queue_fetch(_queue_sql(select="p.id", gold=True, capacity=False), _queue_params(worker, now, gold=True))
    if not ids:
        return None
    return _reserve_fresh(rng.choice(ids), worker, now)


def _still_servable(pair: CandidatePair) -> bool:
    if pair.is_gold:
        return True
    return pair.audience == CandidatePair.Audience.CROWD and pair.state == CandidatePair.State.OPEN


def _held_pairs(worker, now: datetime) -> list[CandidatePair]:
    """The worker's live reservations, oldest first; lapsed or no longer servable ones are dropped."""
    held, dropped = [], []
    reservations = (
        CrowdReservation.objects.filter(user=worker)
        .select_related("pair__a__category", "pair__b__category")
        .order_by("reserved_at", "id")
    )
    for reservation in reservations:
        if reservation.reserved_until > now and _still_servable(reservation.pair):
            held.append(reservation.pair)
        else:
            dropped.append(reservation.pk)
    if dropped:
        CrowdReservation.objects.filter(pk__in=dropped).delete()
    return held


@transaction.atomic
def crowd_next(*, worker, rng: random.Random | None = None) -> QueueState:
    """The pair to show now and the one to prefetch, reserving them for ``worker``."""
    rng = rng or random.Random()
    now = timezone.now()
    profile = worker_profile_get(user=worker)
    today = crowd_decisions_today(worker=worker)
    if profile.is_suspended:
        CrowdReservation.objects.filter(user=worker).delete()
        return QueueState(None, None, today, 0, SUSPENDED_MESSAGE, EMPTY_SUSPENDED)
    room = settings.CROWD_DAILY_CAP - today
    if room <= 0:
        CrowdReservation.objects.filter(user=worker).delete()
        return QueueState(None, None, today, 0, _cap_message(today), EMPTY_DAILY_CAP)

    held = _held_pairs(worker, now)
    wanted = min(HELD_PER_WORKER, room)
    while len(held) < wanted:
        pair = None
        if rng.random() < settings.CROWD_GOLD_RATE and _work_exists(worker, now):
            # Gold only while real work remains: a worker with nothing left to label should not be
            # kept busy answering questions whose answers we already know.
            pair = _reserve_gold(worker, now, rng)
        if pair is None:
            pair = _reserve_work(worker, now)
        if pair is None:
            break
        held.append(pair)

    if not held:
        return QueueState(None, None, today, 0, "No pairs are waiting for you right now. Thank you! Check back later.", EMPTY_NOTHING)
    queue_left = crowd_queue_left(worker=worker, now=now, held=sum(not p.is_gold for p in held))
    return QueueState(held[0], held[1] if len(held) > 1 else None, today, queue_left, None)


def _validate_vote(pair_id, value, reasons, note, duration_ms) -> tuple[int, str, list[str], str, int | None]:
    try:
        pair_id = int(pair_id)
    except (TypeError, ValueError):
        raise InvalidVote(f"pair_id must be an integer, got {pair_id!r}") from None
    try:
        value, reasons, note, duration_ms = decision_clean(value=value, reasons=reasons, note=note, duration_ms=duration_ms)
    except LabelError as exc:
        raise InvalidVote(str(exc)) from None
    return pair_id, value, reasons, note, duration_ms


@transaction.atomic
def crowd_vote_submit(
    *,
    worker,
    pair_id: int,
    value: str,
    reasons: list[str] | None = None,
    note: str = "",
    duration_ms: int | None = None,
) -> VoteOutcome:
    """Record one crowd vote. Resubmitting the same pair returns the first vote unchanged."""
    pair_id, value, reasons, note, duration_ms = _validate_vote(pair_id, value, reasons, note, duration_ms)
    # The profile lock serialises one worker's own submissions (gold counts, idempotency).
    profile = _profile_for_update(worker)
    existing = PairLabel.objects.filter(pair_id=pair_id, user=worker).first()
    if existing is not None:
        return VoteOutcome(existing, False, crowd_decisions_today(worker=worker), worker_suspended=profile.is_suspended)
    if profile.is_suspended:
        raise WorkerSuspended(SUSPENDED_MESSAGE)
    today = crowd_decisions_today(worker=worker)
    if today >= settings.CROWD_DAILY_CAP:
        raise DailyCapReached(_cap_message(today))

    now = timezone.now()
    pair = CandidatePair.objects.select_for_update().filter(pk=pair_id).first()
    reservation = CrowdReservation.objects.filter(pair_id=pair_id, user=worker).first()
    if pair is None or reservation is None:
        raise PairNotAvailable(f"Pair {pair_id} was not given to you; ask for the next pair.")
    if not pair.is_gold:
        if not _still_servable(pair):
            reservation.delete()
            raise PairNotAvailable(f"Pair {pair_id} has left the crowd queue meanwhile; ask for the next pair.")
        if reservation.reserved_until <= now:
            # The reservation lapsed: the vote still counts if nobody took the free place meanwhile.
            holds = CrowdReservation.objects.filter(pair=pair, reserved_until__gt=now).exclude(user=worker).count()
            if pair.crowd_votes + holds >= _votes_needed():
                reservation.delete()
                raise PairNotAvailable(f"Your time on pair {pair_id} ran out and others finished it; ask for the next pair.")

    truth = gold_truth(pair=pair) if pair.is_gold else None
    too_fast = duration_ms is not None and duration_ms < settings.CROWD_MIN_SECONDS_PER_DECISION * 1000
    label = PairLabel.objects.create(
        pair=pair,
        user=worker,
        kind=PairLabel.Kind.CROWD,
        value=value,
        reasons=reasons,
        note=note,
        duration_ms=duration_ms,
        gold_correct=None if truth is None else (value == truth),
        too_fast=too_fast,
    )
    reservation.delete()

    completed = suspended = False
    if not pair.is_gold:
        CandidatePair.objects.filter(pk=pair.pk).update(crowd_votes=F("crowd_votes") + 1)
        completed = pair.crowd_votes + 1 >= _votes_needed()
    elif truth is not None:
        profile.gold_answered += 1
        profile.gold_correct += int(value == truth)
        profile.save(update_fields=["gold_answered", "gold_correct"])
        suspended = _suspend_if_below_threshold(profile)
    return VoteOutcome(label, True, today + 1, completed, suspended)


def _suspend_if_below_threshold(profile: WorkerProfile) -> bool:
    if profile.gold_answered < settings.CROWD_MIN_GOLD_ANSWERS:
        return False
    _low, high = wilson_interval(profile.gold_correct, profile.gold_answered, z=GOLD_CI_Z)
    if high >= settings.CROWD_MIN_GOLD_ACCURACY:
        return False
    worker_suspend(
        profile=profile,
        reason=(
            f"gold accuracy {profile.gold_correct}/{profile.gold_answered}: upper end of the interval "
            f"{high:.2f} is below {settings.CROWD_MIN_GOLD_ACCURACY:.2f}"
        ),
    )
    return True


@transaction.atomic
def crowd_skip(*, worker, pair_id: int) -> None:
    """Skip a held pair: it goes back to the queue for others, never again to this worker."""
    try:
        pair_id = int(pair_id)
    except (TypeError, ValueError):
        raise InvalidVote(f"pair_id must be an integer, got {pair_id!r}") from None
    reservation = CrowdReservation.objects.filter(pair_id=pair_id, user=worker).first()
    if reservation is None:
        raise PairNotAvailable(f"Pair {pair_id} is not reserved for you, so there is nothing to skip.")
    PairSkip.objects.get_or_create(pair_id=pair_id, user=worker, day=timezone.localdate())
    reservation.delete()


@transaction.atomic
def crowd_undo(*, worker) -> CandidatePair:
    """Take back the worker's latest vote (within PAIR_UNDO_SECONDS) and hold the pair again.

    Not possible once the crowd has settled the pair (an AggregatedLabel exists) or for a
    suspended worker."""
    profile = _profile_for_update(worker)
    if profile.is_suspended:
        raise WorkerSuspended(SUSPENDED_MESSAGE)
    now = timezone.now()
    label = (
        PairLabel.objects.filter(user=worker, kind=PairLabel.Kind.CROWD, created_at__gte=now - timedelta(seconds=settings.PAIR_UNDO_SECONDS))
        .order_by("-created_at", "-id")
        .first()
    )
    if label is None:
        minutes = max(1, round(settings.PAIR_UNDO_SECONDS / 60))
        raise NothingToUndo(f"Nothing to undo: you have no decision from the last {minutes} min.")
    pair = CandidatePair.objects.select_for_update().get(pk=label.pair_id)
    if AggregatedLabel.objects.filter(pair=pair).exists():
        raise NothingToUndo("That pair has already been settled by the crowd; it cannot be undone.")
    if pair.is_gold:
        counted = label.gold_correct is not None and (profile.gold_counted_since is None or label.created_at >= profile.gold_counted_since)
        if counted:
            profile.gold_answered = max(0, profile.gold_answered - 1)
            profile.gold_correct = max(0, profile.gold_correct - int(bool(label.gold_correct)))
            profile.save(update_fields=["gold_answered", "gold_correct"])
    label.delete()
    if not pair.is_gold:
        _recount_votes([pair.pk])
    return _reserve(pair.pk, worker, now)


# --- worker standing ----------------------------------------------------------------------------


def _recount_votes(pair_ids) -> None:
    """Set crowd_votes to the number of valid votes (the cache the queue reads)."""
    valid = (
        _valid_crowd_labels()
        .filter(pair=OuterRef("pk"))
        .order_by()
        .values("pair")
        .annotate(n=Count("id"))
        .values("n")[:1]
    )
    CandidatePair.objects.filter(pk__in=list(pair_ids)).update(crowd_votes=Coalesce(Subquery(valid, output_field=IntegerField()), Value(0)))


def _reopen_undercounted(pair_ids) -> None:
    """Crowd pairs settled with votes that no longer count go back to the queue for more votes."""
    k = _votes_needed()
    reopen = CandidatePair.objects.filter(
        pk__in=list(pair_ids),
        audience=CandidatePair.Audience.CROWD,
        state=CandidatePair.State.DECIDED,
        crowd_votes__lt=k,
        aggregate__escalated=False,
    )
    ids = list(reopen.values_list("id", flat=True))
    if ids:
        # An aggregate is derived data, recomputed once the pair has k valid votes again.
        AggregatedLabel.objects.filter(pair_id__in=ids).delete()
        CandidatePair.objects.filter(pk__in=ids).update(state=CandidatePair.State.OPEN)


def _voted_crowd_pairs(user) -> list[int]:
    return list(
        PairLabel.objects.filter(user=user, kind=PairLabel.Kind.CROWD, pair__is_gold=False).values_list("pair_id", flat=True)
    )


@transaction.atomic
def worker_suspend(*, profile: WorkerProfile, reason: str) -> WorkerProfile:
    """Suspend a worker: their votes stay but stop counting; pairs they voted on need others."""
    profile.status = WorkerProfile.Status.SUSPENDED
    profile.suspended_at = timezone.now()
    profile.suspended_reason = reason[:300]
    profile.save(update_fields=["status", "suspended_at", "suspended_reason"])
    CrowdReservation.objects.filter(user=profile.user).delete()
    pair_ids = _voted_crowd_pairs(profile.user)
    _recount_votes(pair_ids)
    _reopen_undercounted(pair_ids)
    log.info("crowd worker %s suspended: %s", profile.user, reason)
    return profile


@transaction.atomic
def worker_reinstate(*, profile: WorkerProfile, by) -> WorkerProfile:
    """Reinstate a suspended worker with a clean gold record; their old votes count again."""
    profile = WorkerProfile.objects.select_for_update().get(pk=profile.pk)
    if not profile.is_suspended:
        raise CrowdError(f"{profile.user} is not suspended.")
    now = timezone.now()
    profile.status = WorkerProfile.Status.ACTIVE
    profile.reinstated_by = by
    profile.reinstated_at = now
    profile.gold_counted_since = now
    profile.gold_answered = 0
    profile.gold_correct = 0
    profile.save()
    _recount_votes(_voted_crowd_pairs(profile.user))
    log.info("crowd worker %s reinstated by %s", profile.user, by)
    return profile


# --- sending pairs to the crowd, gold -----------------------------------------------------------


@transaction.atomic
def crowd_enqueue(*, pair_ids: list[int] | None = None, limit: int | None = None) -> EnqueueReport:
    """Move open stylist-queue candidates to the crowd: unlabelled, not escalated from the crowd,
    not gold and not held by a stylist right now. With ``pair_ids``, only those (the others are
    reported with the reason); otherwise the highest-priority ones, at most ``limit``."""
    if limit is not None and limit < 1:
        raise CrowdError(f"limit must be at least 1, got {limit}")
    now = timezone.now()
    eligible = (
        CandidatePair.objects.filter(audience=CandidatePair.Audience.STYLIST, state=CandidatePair.State.OPEN, is_gold=False)
        .exclude(source=CandidatePair.Source.ESCALATED)
        .exclude(Exists(PairLabel.objects.filter(pair=OuterRef("pk"))))
        .filter(Q(reserved_until__isnull=True) | Q(reserved_until__lte=now))
    )
    skipped: dict[int, str] = {}
    if pair_ids is not None:
        wanted = {int(i) for i in pair_ids}
        eligible = eligible.filter(pk__in=wanted)
    chosen = _lockable(eligible.order_by("-priority", "id")).values_list("id", flat=True)
    ids = list(chosen[:limit] if limit else chosen)
    if pair_ids is not None:
        existing = set(CandidatePair.objects.filter(pk__in=wanted).values_list("id", flat=True))
        for pid in sorted(wanted - set(ids)):
            skipped[pid] = (
                "no such pair"
                if pid not in existing
                else "not an open, unlabelled stylist-queue pair free of reservations (or escalated from the crowd, or gold)"
            )
    CandidatePair.objects.filter(pk__in=ids).update(
        audience=CandidatePair.Audience.CROWD, reserved_by=None, reserved_until=None, reserved_at=None
    )
    _recount_votes(ids)
    return EnqueueReport(moved=ids, skipped=skipped)


@transaction.atomic
def gold_pairs_mark(*, pair_ids: list[int] | None = None, limit: int | None = None) -> list[int]:
    """Mark stylist-labelled pairs, whose stylists agree, as gold for the crowd queue."""
    stylist_labels = PairLabel.objects.filter(pair=OuterRef("pk"), kind=PairLabel.Kind.STYLIST)
    qs = CandidatePair.objects.filter(is_gold=False).filter(Exists(stylist_labels))
    if pair_ids is not None:
        qs = qs.filter(pk__in=list(pair_ids))
    qs = qs.annotate(
        stylist_values=Count("labels__value", filter=Q(labels__kind=PairLabel.Kind.STYLIST), distinct=True)
    ).filter(stylist_values=1)
    ids = list(qs.order_by("-id").values_list("id", flat=True)[: limit or None])
    CandidatePair.objects.filter(pk__in=ids).update(is_gold=True)
    return ids


# --- aggregation --------------------------------------------------------------------------------


def crowd_aggregate(*, method: str = AggregatedLabel.Method.DAWID_SKENE) -> AggregationReport:
    """Aggregate every crowd pair with k valid votes; escalate doubtful ones to stylists.

    Dawid-Skene is fitted on every valid vote (incomplete pairs and gold answers too: more
    evidence about each worker), with gold truths clamped; labels are written for complete pairs.
    Pairs already escalated stay with the stylists.
    """
    k = _votes_needed()
    rows = list(
        _valid_crowd_labels()
        .filter(Q(pair__is_gold=True) | Q(pair__audience=CandidatePair.Audience.CROWD))
        .values_list("pair_id", "user_id", "value", "pair__is_gold")
    )
    votes = [(pair_id, user_id, 1 if value == PairLabel.Value.COMPLEMENTARY else 0) for pair_id, user_id, value, _g in rows]
    gold_ids = {pair_id for pair_id, _u, _v, is_gold in rows if is_gold}
    gold = {}
    if gold_ids:
        for pair_id, values in _stylist_values(gold_ids).items():
            if len(values) == 1:
                gold[pair_id] = 1 if values.pop() == PairLabel.Value.COMPLEMENTARY else 0
    results = aggregation.aggregate(votes, gold=gold, method=method)

    complete = set(
        CandidatePair.objects.filter(
            audience=CandidatePair.Audience.CROWD, is_gold=False, crowd_votes__gte=k, state__in=[CandidatePair.State.OPEN, CandidatePair.State.DECIDED]
        ).values_list("id", flat=True)
    )
    report = AggregationReport(method=method)
    threshold = settings.CROWD_ESCALATE_BELOW
    with transaction.atomic():
        for pair_id in sorted(complete):
            result = results.get(pair_id)
            if result is None:
                continue
            reason = ""
            if result.confidence < threshold:
                reason = f"confidence {result.confidence:.2f} below {threshold:.2f}"
            elif result.split:
                reason = "votes split" if result.majority_share <= 0.5 else "majority and Dawid-Skene disagree"
            AggregatedLabel.objects.update_or_create(
                pair_id=pair_id,
                defaults={
                    "value": "yes" if result.value else "no",
                    "confidence": result.confidence,
                    "method": method,
                    "votes": result.votes,
                    "majority_value": "yes" if result.majority_value else "no",
                    "majority_share": result.majority_share,
                    "escalated": bool(reason),
                    "escalation_reason": reason,
                },
            )
            report.aggregated += 1
            if reason:
                CandidatePair.objects.filter(pk=pair_id).update(
                    audience=CandidatePair.Audience.STYLIST,
                    source=CandidatePair.Source.ESCALATED,
                    state=CandidatePair.State.OPEN,
                    priority=ESCALATED_PRIORITY_BASE + (1.0 - result.confidence),
                )
                CrowdReservation.objects.filter(pair_id=pair_id).delete()
                report.escalated += 1
                report.escalated_pair_ids.append(pair_id)
            else:
                CandidatePair.objects.filter(pk=pair_id).update(state=CandidatePair.State.DECIDED)
                report.decided += 1
    log.info("crowd aggregation (%s): %d pairs, %d decided, %d escalated", method, report.aggregated, report.decided, report.escalated)
    return report


def _stylist_values(pair_ids) -> dict[int, set[str]]:
    values: dict[int, set[str]] = {}
    for pair_id, value in PairLabel.objects.filter(pair_id__in=list(pair_ids), kind=PairLabel.Kind.STYLIST).values_list("pair_id", "value"):
        values.setdefault(pair_id, set()).add(value)
    return values
