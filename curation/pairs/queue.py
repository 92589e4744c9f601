"""The labeling queue: who gets which open pair, for how long, and what happens on a decision.

Kept apart from services.py because two queues run on it: the stylist queue (services.py) and
the crowd queue (curation/crowd/services.py). Both call ``pair_reserve_next``; the crowd passes
its own ordering and filter. The rules that hold for every caller live here:

- a person holds at most ``want`` pairs (the one on screen and the prefetched one); asking again
  returns the same pairs (a reload does not burn the queue) and extends their reservations;
- on PostgreSQL, new pairs are picked with ``SELECT ... FOR UPDATE SKIP LOCKED`` so two people
  asking at once never get the same row and never wait on each other, in one statement (one
  round trip: the queue's latency is mostly round trips); elsewhere (SQLite in development) each
  pick is a compare-and-set UPDATE, which is just as exclusive, only slower;
- a reservation that has expired is free again: nothing has to sweep it;
- a pair skipped by a person today, or already labeled by them, is never handed back to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from curation.pairs.models import CandidatePair, PairLabel, PairSkip

# Counting a million open rows on every "next" is what made Label Studio's queue slow; we count
# at most this many and the page says "1000+".
QUEUE_LEFT_CAP = 1000

EMPTY_NOTHING = "nothing_to_label"
EMPTY_RESERVED = "all_reserved"
EMPTY_SKIPPED = "all_skipped_today"

EMPTY_MESSAGES = {
    EMPTY_NOTHING: "Nothing to label: no open candidate pairs. New candidates arrive when the retraining pipeline next refreshes them.",
    EMPTY_RESERVED: "Every open pair is reserved by someone else right now. Reservations expire after {minutes} min; try again then.",
    EMPTY_SKIPPED: "The open pairs left are ones you skipped today; they stay in the queue for others.",
}


@dataclass(frozen=True)
class QueueState:
    """What a person sees: pairs they hold (the first is on screen), counters, why it is empty."""

    held: list[CandidatePair]
    today: int
    queue_left: int
    queue_left_capped: bool
    empty_code: str | None

    @property
    def current(self) -> CandidatePair | None:
        return self.held[0] if self.held else None

    @property
    def prefetch(self) -> CandidatePair | None:
        return self.held[1] if len(self.held) > 1 else None

    @property
    def empty_reason(self) -> str | None:
        if self.empty_code is None:
            return None
        minutes = max(1, round(settings.PAIR_RESERVATION_SECONDS / 60))
        return EMPTY_MESSAGES[self.empty_code].format(minutes=minutes)


def _reservation_until(now):
    return now + timedelta(seconds=settings.PAIR_RESERVATION_SECONDS)


def queue_available(*, user, audience: str, now=None, extra_filter: Q | None = None) -> QuerySet:
    """Open pairs of ``audience`` this person may be handed now (no ordering, no lock)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    qs = CandidatePair.objects.filter(audience=audience, state=CandidatePair.State.OPEN).filter(
        Q(reserved_until__isnull=True) | Q(reserved_until__lte=now)
    )
    if extra_filter is not None:
        qs = qs.filter(extra_filter)
    skipped = PairSkip.objects.filter(pair=OuterRef("pk"), user=user, day=today)
    labeled = PairLabel.objects.filter(pair=OuterRef("pk"), user=user)
    return qs.filter(~Exists(skipped), ~Exists(labeled))


def queue_held(*, user, audience: str, now=None) -> QuerySet:
    """Pairs this person holds a live reservation on, the one shown first at the front."""
    now = now or timezone.now()
    return CandidatePair.objects.filter(
        reserved_by=user, reserved_until__gt=now, audience=audience, state=CandidatePair.State.OPEN
    ).order_by("reserved_at", "id")


def _sorted_new(pairs: list[CandidatePair], order_by: Iterable[str]) -> list[CandidatePair]:
    """Newly reserved pairs in queue order (the first one is shown before the prefetched one)."""
    for key in reversed([k for k in order_by if isinstance(k, str)]):
        name = key.lstrip("-")
        name = "pk" if name == "id" else name
        pairs.sort(key=lambda p, n=name: getattr(p, n), reverse=key.startswith("-"))
    return pairs


def pair_reserve_next(
    *,
    user,
    audience: str,
    want: int = 2,
    order_by: Iterable[str] = ("-priority", "id"),
    extra_filter: Q | None = None,
    queryset_hook: Callable[[QuerySet], QuerySet] | None = None,
) -> list[CandidatePair]:
    """The pairs ``user`` holds after topping their reservations up to ``want``.

    Held pairs come first (oldest reservation first) and get their reservation extended; new ones
    are taken in ``order_by`` order among ``queue_available`` rows narrowed by ``extra_filter`` and
    ``queryset_hook`` (the crowd queue's hooks for gold questions and vote counts). ``order_by``
    must name model fields (it also sorts the new pairs in Python).
    """
    held, _ = _reserve(
        user=user, audience=audience, want=want, order_by=order_by, extra_filter=extra_filter, queryset_hook=queryset_hook
    )
    return held


def _reserve(*, user, audience, want, order_by, extra_filter, queryset_hook, label_kind: str | None = None):
    """pair_reserve_next, plus the counters (on PostgreSQL, from the same statement) when
    ``label_kind`` is given: (held pairs, (today, left, capped) or None)."""
    order_by = tuple(order_by)
    now = timezone.now()
    until = _reservation_until(now)
    qs = queue_available(user=user, audience=audience, now=now, extra_filter=extra_filter).order_by(*order_by)
    if queryset_hook is not None:
        qs = queryset_hook(qs)
    counts = None
    if connection.vendor == "postgresql":
        held_ids, new_ids, counts = _reserve_postgresql(
            user=user, audience=audience, want=want, qs=qs, now=now, until=until, label_kind=label_kind
        )
    else:
        held_ids, new_ids = _reserve_portable(user=user, audience=audience, want=want, qs=qs, now=now, until=until)
    rows = {p.pk: p for p in CandidatePair.objects.filter(pk__in=held_ids + new_ids).select_related("a__category", "b__category")}
    held = sorted((rows[pk] for pk in held_ids if pk in rows), key=lambda p: (p.reserved_at or now, p.pk))
    new = _sorted_new([rows[pk] for pk in new_ids if pk in rows], order_by)
    return held + new, counts


def _reserve_postgresql(*, user, audience, want, qs, now, until, label_kind=None):
    """One statement, one round trip: extend what the user holds, top up with SKIP LOCKED rows.

    The candidate rows are chosen by the queryset's own SQL with FOR UPDATE SKIP LOCKED appended,
    so a row another labeler is taking at this instant is passed over, never waited on, never
    handed out twice. Rows locked but not needed are released when the statement ends.

    The statement commits with synchronous_commit off: waiting for the WAL flush was most of its
    latency, and a reservation need not survive a server crash (the pair would just be free
    again). Locking and visibility are unchanged; labels are still committed durably.
    With ``label_kind`` the counters ride along (one round trip fewer). Returns (held ids, new
    ids, counts or None).
    """
    table = connection.ops.quote_name(CandidatePair._meta.db_table)
    pick_sql, pick_params = qs.values("pk")[:want].query.sql_with_params()
    if label_kind is not None:
        counts_sql, counts_params = _counts_sql(user=user, audience=audience, label_kind=label_kind)
    else:
        counts_sql, counts_params = "NULL, NULL", []
    sql = f"""
        WITH cfg AS (
            SELECT set_config('synchronous_commit', 'off', true) AS value
        ), held AS (
            UPDATE {table} SET reserved_until = %s
            WHERE reserved_by_id = %s AND reserved_until > %s AND audience = %s AND state = %s
            RETURNING id
        ), pick AS (
            {pick_sql} FOR UPDATE OF {table} SKIP LOCKED
        ), taken AS (
            UPDATE {table} SET reserved_by_id = %s, reserved_until = %s, reserved_at = %s
            WHERE id IN (SELECT pk FROM pick LIMIT GREATEST(%s - (SELECT count(*) FROM held), 0))
            RETURNING id
        )
        SELECT r.id, r.new, {counts_sql}
        FROM cfg LEFT JOIN (SELECT id, 0 AS new FROM held UNION ALL SELECT id, 1 FROM taken) AS r ON true
    """
    params = [until, user.pk, now, audience, CandidatePair.State.OPEN, *pick_params, user.pk, until, now, want, *counts_params]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        fetched = cur.fetchall()
    rows = [row for row in fetched if row[0] is not None]  # (NULL, NULL, ...): nothing held or taken
    counts = None
    if label_kind is not None:
        today, left = fetched[0][2], fetched[0][3]
        counts = (today, min(left, QUEUE_LEFT_CAP), left > QUEUE_LEFT_CAP)
    return [r[0] for r in rows if not r[1]], [r[0] for r in rows if r[1]], counts


def _reserve_portable(*, user, audience, want, qs, now, until) -> tuple[list[int], list[int]]:
    """Other databases (SQLite in development): each pick is a compare-and-set UPDATE."""
    with transaction.atomic():
        held_ids = list(queue_held(user=user, audience=audience, now=now).values_list("pk", flat=True))
        if held_ids:
            CandidatePair.objects.filter(pk__in=held_ids).update(reserved_until=until)
        missing = want - len(held_ids)
        picked: list[int] = []
        if missing <= 0:
            return held_ids, picked
        # Over-fetch: a concurrent writer may take some of them between our read and our write.
        for pk in qs.values_list("pk", flat=True)[: missing * 4]:
            won = (
                CandidatePair.objects.filter(pk=pk, state=CandidatePair.State.OPEN)
                .filter(Q(reserved_until__isnull=True) | Q(reserved_until__lte=now))
                .update(reserved_by=user, reserved_until=until, reserved_at=now)
            )
            if won:
                picked.append(pk)
                if len(picked) == missing:
                    break
        return held_ids, picked


def queue_state(
    *,
    user,
    audience: str,
    label_kind: str,
    want: int = 2,
    order_by: Iterable[str] = ("-priority", "id"),
    extra_filter: Q | None = None,
    queryset_hook: Callable[[QuerySet], QuerySet] | None = None,
) -> QueueState:
    """Reserve (or keep) the next pairs for ``user`` and compute the counters the page shows."""
    held, counts = _reserve(
        user=user, audience=audience, want=want, order_by=order_by, extra_filter=extra_filter,
        queryset_hook=queryset_hook, label_kind=label_kind,
    )
    today, left, capped = counts or queue_counts(user=user, audience=audience, label_kind=label_kind)
    empty = None if held else queue_empty_code(user=user, audience=audience, extra_filter=extra_filter)
    return QueueState(held=held, today=today, queue_left=left, queue_left_capped=capped, empty_code=empty)


def _counts_sql(*, user, audience: str, label_kind: str) -> tuple[str, list]:
    """Two scalar subqueries: decisions today, and open pairs counted up to QUEUE_LEFT_CAP + 1
    (the inner LIMIT makes the database stop at the cap instead of reading every row)."""
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    labels = connection.ops.quote_name(PairLabel._meta.db_table)
    pairs = connection.ops.quote_name(CandidatePair._meta.db_table)
    sql = (
        f"(SELECT count(*) FROM {labels} WHERE user_id = %s AND kind = %s AND created_at >= %s), "
        f"(SELECT count(*) FROM (SELECT 1 FROM {pairs} WHERE audience = %s AND state = %s LIMIT %s) AS capped)"
    )
    return sql, [user.pk, label_kind, start, audience, CandidatePair.State.OPEN, QUEUE_LEFT_CAP + 1]


def queue_counts(*, user, audience: str, label_kind: str) -> tuple[int, int, bool]:
    """(decisions today, open pairs left up to QUEUE_LEFT_CAP, whether capped) in one query."""
    sql, params = _counts_sql(user=user, audience=audience, label_kind=label_kind)
    with connection.cursor() as cur:
        cur.execute(f"SELECT {sql}", params)
        today, left = cur.fetchone()
    return today, min(left, QUEUE_LEFT_CAP), left > QUEUE_LEFT_CAP


def label_count_today(*, user, kind: str) -> int:
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return PairLabel.objects.filter(user=user, kind=kind, created_at__gte=start).count()


def queue_empty_code(*, user, audience: str, extra_filter: Q | None = None) -> str:
    """Why nothing could be handed out: so the page can tell 'done' from 'come back later'."""
    now = timezone.now()
    open_pairs = CandidatePair.objects.filter(audience=audience, state=CandidatePair.State.OPEN)
    if extra_filter is not None:
        open_pairs = open_pairs.filter(extra_filter)
    if open_pairs.filter(reserved_until__gt=now).exclude(reserved_by=user).exists():
        return EMPTY_RESERVED
    if open_pairs.filter(skips__user=user, skips__day=timezone.localdate(now)).exists():
        return EMPTY_SKIPPED
    return EMPTY_NOTHING


def pair_release(*, pair_ids: Iterable[int], user) -> int:
    """Give back reservations ``user`` holds (e.g. on skip); returns how many were released."""
    return CandidatePair.objects.filter(pk__in=list(pair_ids), reserved_by=user).update(
        reserved_by=None, reserved_until=None, reserved_at=None
    )
