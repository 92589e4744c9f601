"""Every write of the pairs domain: stylist decisions, skips, undo, outfits and candidate pairs.

The queue mechanics shared with the crowd queue live in queue.py; the stylist queue here is that
queue with stylist rules (a stylist's decision closes the pair and makes it a gold question).
Model outputs come only through the door ``curation.training.serving``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from curation.accounts.roles import ADMIN, has_role
from curation.pairs import queue
from curation.pairs.models import CandidatePair, Outfit, OutfitItem, PairLabel, PairSkip

logger = logging.getLogger(__name__)

NOTE_MAX_CHARS = 2000
OUTFIT_MIN_ITEMS = 2
OUTFIT_MAX_ITEMS = 12
# Two products "cross categories" when their ancestors at this level differ (Topwear vs
# Bottomwear): two shirts are the same role in an outfit and rarely worth a stylist's time.
CROSS_CATEGORY_LEVEL = 1


class LabelError(ValueError):
    """A decision that cannot be stored; the message names the offending field."""


class NothingToUndo(LookupError):
    pass


class OutfitError(ValueError):
    """An outfit that cannot be saved; the message names the offending field."""


# --- Stylist queue ----------------------------------------------------------------------------


def stylist_queue_next(*, user) -> queue.QueueState:
    """The pair on screen and the prefetched one (both reserved for ``user``), with counters."""
    return queue.queue_state(user=user, audience=CandidatePair.Audience.STYLIST, label_kind=PairLabel.Kind.STYLIST)


def stylist_counts(*, user) -> dict:
    today, left, capped = queue.queue_counts(user=user, audience=CandidatePair.Audience.STYLIST, label_kind=PairLabel.Kind.STYLIST)
    return {"today": today, "queue_left": left, "queue_left_capped": capped}


def decision_clean(*, value: str, reasons: Iterable[str] | None, note: str | None, duration_ms) -> tuple[str, list[str], str, int | None]:
    """Check and normalise a labeling decision (stylist label or crowd vote); LabelError names the field."""
    if value not in PairLabel.Value.values:
        raise LabelError(f"value: {value!r} is not one of {', '.join(PairLabel.Value.values)}")
    reasons = list(reasons or [])
    unknown = [r for r in reasons if r not in PairLabel.REASON_TAGS]
    if unknown:
        raise LabelError(f"reasons: unknown tag(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(PairLabel.REASON_TAGS)}")
    reasons = [r for r in PairLabel.REASON_TAGS if r in reasons]  # canonical order, no duplicates
    note = (note or "").strip()
    if len(note) > NOTE_MAX_CHARS:
        raise LabelError(f"note: {len(note)} characters, at most {NOTE_MAX_CHARS}")
    if duration_ms is not None:
        try:
            duration_ms = int(duration_ms)
        except (TypeError, ValueError):
            raise LabelError(f"duration_ms: {duration_ms!r} is not an integer") from None
        if duration_ms < 0:
            raise LabelError(f"duration_ms: {duration_ms} is negative")
    return value, reasons, note, duration_ms


def pair_label_record(
    *,
    user,
    pair_id: int,
    kind: str,
    value: str,
    reasons: Iterable[str] | None = None,
    note: str | None = "",
    duration_ms: int | None = None,
    on_created: Callable[[CandidatePair, PairLabel], None] | None = None,
) -> tuple[PairLabel, bool]:
    """Store one person's decision on a pair, once: (label, created).

    Resubmitting (double click, retried request) returns the existing label unchanged. The pair
    row is locked while deciding so two requests for the same pair serialise; the unique
    constraint on (pair, user) is the last line of defence. ``on_created`` runs in the same
    transaction (the crowd queue updates vote counts and gold answers there).
    """
    value, reasons, note, duration_ms = decision_clean(value=value, reasons=reasons, note=note, duration_ms=duration_ms)
    with transaction.atomic():
        pair = CandidatePair.objects.select_for_update(of=("self",)).filter(pk=pair_id).first()
        if pair is None:
            raise LabelError(f"pair_id: no candidate pair with id {pair_id}")
        existing = PairLabel.objects.filter(pair=pair, user=user).first()
        if existing is not None:
            return existing, False
        if pair.state == CandidatePair.State.RETIRED:
            raise LabelError(f"pair_id: pair {pair_id} is retired and takes no more labels")
        fields = dict(pair=pair, user=user, kind=kind, value=value, reasons=reasons, note=note, duration_ms=duration_ms)
        if connection.features.has_select_for_update:
            # The pair row is locked: a concurrent request for it waits and then finds our label.
            label = PairLabel.objects.create(**fields)
        else:
            try:
                with transaction.atomic():
                    label = PairLabel.objects.create(**fields)
            except IntegrityError:
                # A concurrent request of the same user won (possible where rows are not locked).
                return PairLabel.objects.get(pair=pair, user=user), False
        if on_created is not None:
            on_created(pair, label)
        return label, True


def _close_as_stylist_decision(pair: CandidatePair, label: PairLabel) -> None:
    # A stylist's word is final for training and makes the pair a gold question for the crowd.
    pair.state = CandidatePair.State.DECIDED
    pair.is_gold = True
    pair.reserved_by = None
    pair.reserved_until = None
    pair.reserved_at = None
    pair.save(update_fields=["state", "is_gold", "reserved_by", "reserved_until", "reserved_at", "updated_at"])


def stylist_label_submit(
    *, user, pair_id: int, value: str, reasons: Iterable[str] | None = None, note: str | None = "", duration_ms: int | None = None
) -> tuple[PairLabel, bool]:
    return pair_label_record(
        user=user,
        pair_id=pair_id,
        kind=PairLabel.Kind.STYLIST,
        value=value,
        reasons=reasons,
        note=note,
        duration_ms=duration_ms,
        on_created=_close_as_stylist_decision,
    )


def pair_skip(*, user, pair_id: int) -> PairSkip:
    """Skip: the pair goes back to the queue for others, not to ``user`` again today."""
    with transaction.atomic():
        pair = CandidatePair.objects.filter(pk=pair_id).first()
        if pair is None:
            raise LabelError(f"pair_id: no candidate pair with id {pair_id}")
        skip, _ = PairSkip.objects.get_or_create(pair=pair, user=user, day=timezone.localdate())
        queue.pair_release(pair_ids=[pair.pk], user=user)
        return skip


def pair_label_undo_last(*, user, kind: str, on_undone: Callable[[CandidatePair, PairLabel], None] | None = None) -> CandidatePair:
    """Withdraw ``user``'s most recent decision (within PAIR_UNDO_SECONDS) and hand the pair back.

    Only a person's own recent decisions can be undone, one at a time, newest first. The pair is
    reserved for them again and put in front of anything else they hold, so it is shown next.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.PAIR_UNDO_SECONDS)
    with transaction.atomic():
        label = (
            PairLabel.objects.select_for_update()
            .filter(user=user, kind=kind, created_at__gte=cutoff)
            .order_by("-created_at", "-id")
            .first()
        )
        if label is None:
            minutes = max(1, round(settings.PAIR_UNDO_SECONDS / 60))
            raise NothingToUndo(f"Nothing to undo: you have no decision from the last {minutes} min.")
        pair = CandidatePair.objects.select_for_update(of=("self",)).get(pk=label.pair_id)
        label.delete()
        if on_undone is not None:
            on_undone(pair, label)
        held_first = (
            CandidatePair.objects.filter(reserved_by=user, reserved_until__gt=now, reserved_at__isnull=False)
            .order_by("reserved_at")
            .values_list("reserved_at", flat=True)
            .first()
        )
        pair.reserved_by = user
        pair.reserved_until = now + timedelta(seconds=settings.PAIR_RESERVATION_SECONDS)
        pair.reserved_at = min(now, held_first - timedelta(microseconds=1)) if held_first else now
        pair.save(update_fields=["state", "is_gold", "reserved_by", "reserved_until", "reserved_at", "updated_at"])
        return pair


def _reopen_after_stylist_undo(pair: CandidatePair, label: PairLabel) -> None:
    if not pair.labels.filter(kind=PairLabel.Kind.STYLIST).exists():
        pair.state = CandidatePair.State.OPEN
        pair.is_gold = False


def stylist_label_undo(*, user) -> CandidatePair:
    return pair_label_undo_last(user=user, kind=PairLabel.Kind.STYLIST, on_undone=_reopen_after_stylist_undo)


# --- Outfits ----------------------------------------------------------------------------------


def _outfit_clean(*, name: str, product_ids: Iterable[int]) -> tuple[str, list[int]]:
    from curation.catalog.models import Product

    name = (name or "").strip()
    if not name:
        raise OutfitError("name: an outfit needs a name")
    if len(name) > 200:
        raise OutfitError(f"name: {len(name)} characters, at most 200")
    ids: list[int] = []
    for raw in product_ids or []:
        try:
            pid = int(raw)
        except (TypeError, ValueError):
            raise OutfitError(f"product_ids: {raw!r} is not a product id") from None
        if pid not in ids:
            ids.append(pid)
    if len(ids) < OUTFIT_MIN_ITEMS:
        raise OutfitError(f"product_ids: an outfit needs at least {OUTFIT_MIN_ITEMS} different products, got {len(ids)}")
    if len(ids) > OUTFIT_MAX_ITEMS:
        raise OutfitError(f"product_ids: at most {OUTFIT_MAX_ITEMS} products in an outfit, got {len(ids)}")
    found = set(Product.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pid for pid in ids if pid not in found]
    if missing:
        raise OutfitError(f"product_ids: no product with id {', '.join(map(str, missing))}")
    return name, ids


def _outfit_set_items(outfit: Outfit, ids: list[int]) -> None:
    outfit.items.all().delete()
    OutfitItem.objects.bulk_create([OutfitItem(outfit=outfit, product_id=pid, position=i) for i, pid in enumerate(ids)])


@transaction.atomic
def outfit_create(
    *, user, name: str, product_ids: Iterable[int], source: str = Outfit.Source.BUILDER, external_id: str = ""
) -> Outfit:
    name, ids = _outfit_clean(name=name, product_ids=product_ids)
    outfit = Outfit.objects.create(name=name, created_by=user, source=source, external_id=external_id)
    _outfit_set_items(outfit, ids)
    return outfit


def _outfit_check_owner(*, user, outfit: Outfit) -> None:
    if outfit.created_by_id != user.pk and not has_role(user, ADMIN):
        raise PermissionDenied("Only the stylist who made this outfit (or an admin) can change it.")


@transaction.atomic
def outfit_update(*, user, outfit: Outfit, name: str | None = None, product_ids: Iterable[int] | None = None) -> Outfit:
    _outfit_check_owner(user=user, outfit=outfit)
    new_name, ids = _outfit_clean(
        name=outfit.name if name is None else name,
        product_ids=list(outfit.items.values_list("product_id", flat=True)) if product_ids is None else product_ids,
    )
    outfit.name = new_name
    outfit.save(update_fields=["name", "updated_at"])
    if product_ids is not None:
        _outfit_set_items(outfit, ids)
    return outfit


@transaction.atomic
def outfit_delete(*, user, outfit: Outfit) -> None:
    _outfit_check_owner(user=user, outfit=outfit)
    outfit.delete()


@dataclass
class OutfitImportReport:
    outfits_created: int = 0
    outfits_updated: int = 0
    items: int = 0
    rows: int = 0
    # (row number as in the file, header = row 1; message)
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    report_path: Path | None = None


class OutfitImportError(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = errors[:20]
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__("\n".join(shown) + more)


def outfits_import_csv(
    *,
    path: Path | str,
    outfit_column: str = "outfit_id",
    sku_column: str = "sku",
    name_column: str | None = None,
    delimiter: str = ",",
    skip_bad_rows: bool = False,
    report_path: Path | str | None = None,
    user=None,
    progress: Callable[[str, int, int], None] | None = None,
) -> OutfitImportReport:
    """Import curated outfits, one (outfit id, sku) per row.

    All or nothing: any bad row stops the import with every problem listed by row number, unless
    ``skip_bad_rows``, which imports the good rows and writes the bad ones to a CSV report
    (``report_path``, default var/import-reports/...). An outfit whose id was imported before has
    its items replaced (re-running an import is safe). ``progress(phase, done, total)``.
    """
    from curation.catalog.models import Product

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise OutfitImportError([f"{name}: no such file"])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OutfitImportError([f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = reader.fieldnames or []
    wanted = [c for c in (outfit_column, sku_column, name_column) if c]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise OutfitImportError(
            [f"{name}: missing column(s) {', '.join(missing)}; the header has {', '.join(header) or 'nothing'} (use --outfit-column/--sku-column to name others)"]
        )
    rows = list(reader)
    report = OutfitImportReport(rows=len(rows))
    skus = {(r.get(sku_column) or "").strip() for r in rows}
    product_by_sku = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk"))

    errors: list[tuple[int, str]] = []
    outfits: dict[str, dict] = {}
    for i, row in enumerate(rows):
        rowno = i + 2  # the header is row 1
        if None in row:  # more cells than header columns
            errors.append((rowno, f"{len(row[None])} cell(s) more than the header has"))
            continue
        oid = (row.get(outfit_column) or "").strip()
        sku = (row.get(sku_column) or "").strip()
        if not oid:
            errors.append((rowno, f"{outfit_column} is empty"))
            continue
        if len(oid) > 120:
            errors.append((rowno, f"{outfit_column} is {len(oid)} characters, at most 120"))
            continue
        if not sku:
            errors.append((rowno, f"{sku_column} is empty"))
            continue
        pid = product_by_sku.get(sku)
        if pid is None:
            errors.append((rowno, f"unknown {sku_column} {sku!r}"))
            continue
        entry = outfits.setdefault(oid, {"rows": [], "ids": [], "name": ""})
        if pid in entry["ids"]:
            errors.append((rowno, f"{sku_column} {sku!r} appears twice in outfit {oid!r}"))
            continue
        entry["rows"].append(rowno)
        entry["ids"].append(pid)
        if name_column and (row.get(name_column) or "").strip():
            entry["name"] = row[name_column].strip()[:200]
    for oid, entry in list(outfits.items()):
        if len(entry["ids"]) < OUTFIT_MIN_ITEMS:
            where = ", ".join(map(str, entry["rows"]))
            errors.append((entry["rows"][0], f"outfit {oid!r} has {len(entry['ids'])} valid item(s) (row {where}); an outfit needs at least {OUTFIT_MIN_ITEMS}"))
            del outfits[oid]
        elif len(entry["ids"]) > OUTFIT_MAX_ITEMS:
            errors.append((entry["rows"][0], f"outfit {oid!r} has {len(entry['ids'])} items; at most {OUTFIT_MAX_ITEMS}"))
            del outfits[oid]
    errors.sort()
    if errors and not skip_bad_rows:
        raise OutfitImportError([f"{name}: row {r}: {msg}" for r, msg in errors])
    report.bad_rows = errors

    total = len(outfits)
    with transaction.atomic():
        existing = {o.external_id: o for o in Outfit.objects.filter(external_id__in=list(outfits))}
        for n, (oid, entry) in enumerate(outfits.items(), start=1):
            outfit = existing.get(oid)
            if outfit is None:
                outfit = Outfit.objects.create(
                    name=entry["name"] or f"Imported outfit {oid}", external_id=oid, source=Outfit.Source.IMPORT, created_by=user
                )
                report.outfits_created += 1
            else:
                if entry["name"]:
                    outfit.name = entry["name"]
                outfit.save(update_fields=["name", "updated_at"])
                report.outfits_updated += 1
            _outfit_set_items(outfit, entry["ids"])
            report.items += len(entry["ids"])
            if progress is not None:
                progress("outfits", n, total)
    if errors:
        report.report_path = Path(report_path) if report_path else _default_report_path(path)
        report.report_path.parent.mkdir(parents=True, exist_ok=True)
        with report.report_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "error"])
            writer.writerows(errors)
    return report


def _default_report_path(csv_path: Path) -> Path:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return Path(settings.VAR_DIR) / "import-reports" / f"{csv_path.stem}-{stamp}-bad-rows.csv"


# --- Candidate pairs --------------------------------------------------------------------------

SOURCES = (CandidatePair.Source.SIMILAR, CandidatePair.Source.UNCERTAIN, CandidatePair.Source.EXPLORATION)


def _serving():
    """The door to the models (curation.training.serving); None while it is not deployed."""
    try:
        from curation.training import serving
    except ModuleNotFoundError as exc:
        if exc.name != "curation.training.serving":
            raise
        logger.warning("curation.training.serving is missing: candidates come from exploration only")
        return None
    return serving


def _active_embeddings():
    door = _serving()
    return door.active_embeddings() if door else None


def _active_pair_scorer():
    door = _serving()
    return door.active_pair_scorer() if door else None


def candidate_mix_parse(raw: str) -> dict[str, float]:
    """``similar=0.5,uncertain=0.35,exploration=0.15`` -> shares that add up to 1."""
    shares: dict[str, float] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SOURCES:
            raise ImproperlyConfigured(f"CANDIDATE_MIX: {part!r} is not SOURCE=SHARE with SOURCE one of {', '.join(SOURCES)}")
        try:
            share = float(value)
        except ValueError:
            raise ImproperlyConfigured(f"CANDIDATE_MIX: share {value!r} for {key} is not a number") from None
        if share < 0:
            raise ImproperlyConfigured(f"CANDIDATE_MIX: share for {key} is negative")
        shares[key] = share
    total = sum(shares.values())
    if total <= 0:
        raise ImproperlyConfigured("CANDIDATE_MIX: the shares add up to 0")
    return {k: v / total for k, v in shares.items()}


def _category_groups() -> dict[int, int]:
    """category id -> id of its ancestor at CROSS_CATEGORY_LEVEL (itself when shallower)."""
    from curation.catalog.models import Category

    rows = {cid: (parent, level) for cid, parent, level in Category.objects.values_list("id", "parent_id", "level")}
    groups = {}
    for cid in rows:
        node = cid
        while rows[node][1] > CROSS_CATEGORY_LEVEL and rows[node][0] is not None:
            node = rows[node][0]
        groups[cid] = node
    return groups


@dataclass
class _Catalog:
    """Product ids and their category groups, loaded once per refresh."""

    group_of: dict[int, int]
    ids: list[int]

    @classmethod
    def load(cls) -> "_Catalog":
        from curation.catalog.models import Product

        groups = _category_groups()
        group_of = {pid: groups[cid] for pid, cid in Product.objects.values_list("id", "category_id")}
        return cls(group_of=group_of, ids=list(group_of))

    def cross(self, a: int, b: int) -> bool:
        ga, gb = self.group_of.get(a), self.group_of.get(b)
        return ga is not None and gb is not None and ga != gb


def _ordered(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


class _Seen:
    """Pairs never to propose again: every candidate pair in the database (any state), every
    outfit pair, and what this refresh already made.

    Candidate pairs are asked of the database only for the keys proposed, in chunks: loading
    every pair of a queue with millions of rows into memory on each refresh would not scale.
    """

    CHUNK = 400

    def __init__(self):
        from curation.pairs.selectors import outfit_pairs

        self.local: set[tuple[int, int]] = set(outfit_pairs())

    def add(self, keys: Iterable[tuple[int, int]]) -> None:
        self.local.update(keys)

    def fresh(self, keys: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``keys`` (ordered, a < b) minus the seen ones, in their order."""
        keys = [k for k in dict.fromkeys(keys) if k not in self.local]
        table = connection.ops.quote_name(CandidatePair._meta.db_table)
        existing: set[tuple[int, int]] = set()
        for start in range(0, len(keys), self.CHUNK):
            chunk = keys[start : start + self.CHUNK]
            values = ", ".join(["(%s, %s)"] * len(chunk))
            sql = f"SELECT c.a_id, c.b_id FROM {table} c JOIN (VALUES {values}) AS v ON c.a_id = v.column1 AND c.b_id = v.column2"
            with connection.cursor() as cur:
                cur.execute(sql, [x for key in chunk for x in key])
                existing.update((int(a), int(b)) for a, b in cur.fetchall())
        return [k for k in keys if k not in existing]


# Catalogs up to this many products have their cross-category pairs enumerated (~125K pairs).
_ENUMERATE_BELOW = 500


def candidates_exploration(*, n: int, catalog: _Catalog, seen: _Seen, rng: random.Random, rounds: int = 5) -> list[tuple[int, int, float]]:
    """Random cross-category pairs never proposed before: (a, b, score), score a random tie-breaker."""
    out: dict[tuple[int, int], float] = {}
    if len(catalog.ids) < 2:
        return []
    if len(catalog.ids) <= _ENUMERATE_BELOW:
        # A small catalog has few cross pairs: list them all once instead of sampling blindly
        # for pairs that do not exist (which spun for tens of seconds on a 24-product catalog).
        ids = sorted(catalog.ids)
        every = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :] if catalog.cross(a, b)]
        rng.shuffle(every)
        picked: list[tuple[int, int]] = []
        step = max(4 * n, 2000)
        for start in range(0, len(every), step):
            picked.extend(seen.fresh(every[start : start + step])[: n - len(picked)])
            if len(picked) >= n:
                break
        return [(a, b, rng.random()) for a, b in picked]
    for _ in range(rounds):
        need = n - len(out)
        if need <= 0:
            break
        batch: set[tuple[int, int]] = set()
        for _ in range(need * 40):
            if len(batch) >= need * 2:
                break
            a, b = rng.sample(catalog.ids, 2)
            key = _ordered(a, b)
            if catalog.cross(a, b) and key not in out:
                batch.add(key)
        for key in seen.fresh(sorted(batch))[:need]:
            out[key] = rng.random()
    return [(a, b, s) for (a, b), s in out.items()]


def candidates_similar(*, n: int, catalog: _Catalog, seen: _Seen, embeddings, rng: random.Random, k: int | None = None) -> list[tuple[int, int, float]]:
    """(a', b) and (a, b') for each known positive (a, b), a' among the k visual neighbours of a.

    Score: the neighbour's visual similarity; the best n are kept.
    """
    from curation.pairs.selectors import positive_pairs

    if embeddings is None:
        return []
    k = k or settings.CANDIDATE_NEIGHBOURS
    positives = positive_pairs()
    rng.shuffle(positives)
    best: dict[tuple[int, int], float] = {}
    for a, b in positives:
        for anchor, partner in ((a, b), (b, a)):
            if not embeddings.has(anchor):
                continue
            for other, score in embeddings.neighbours(anchor, k):
                if other in (anchor, partner) or not catalog.cross(other, partner):
                    continue
                key = _ordered(other, partner)
                if score > best.get(key, -math.inf):
                    best[key] = float(score)
        if len(best) >= n * 8:
            break
    ranked = sorted(best, key=lambda key: -best[key])
    return [(a, b, best[(a, b)]) for a, b in seen.fresh(ranked)[:n]]


def candidates_uncertain(*, n: int, catalog: _Catalog, seen: _Seen, scorer, rng: random.Random, pool_factor: int = 20) -> list[tuple[int, int, float]]:
    """Cross-category pairs the active siamese model is least sure of (score nearest 0.5).

    Score: 1 - 2|p - 0.5| (1 = a coin flip for the model).
    """
    if scorer is None:
        return []
    pool = candidates_exploration(n=n * pool_factor, catalog=catalog, seen=seen, rng=rng)
    if not pool:
        return []
    probs = scorer.score([(a, b) for a, b, _ in pool])
    # NaN: a product the model has no embedding for yet; such pairs cannot be judged uncertain.
    scored = [(a, b, 1.0 - 2.0 * abs(float(p) - 0.5)) for (a, b, _), p in zip(pool, probs) if not math.isnan(float(p))]
    scored.sort(key=lambda t: -t[2])
    return scored[:n]


def _split(total: int, shares: dict[str, float]) -> dict[str, int]:
    counts = {k: int(total * v) for k, v in shares.items()}
    # Hand the rounding remainder to the largest shares so the counts add up to ``total``.
    for key in sorted(shares, key=lambda k: -shares[k])[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def candidates_refresh(*, sources: Iterable[str] | None = None, batch: int | None = None, seed: int | None = None) -> dict[str, int]:
    """Add up to ``batch`` new open candidate pairs for stylists, mixed by CANDIDATE_MIX.

    Called by the training pipeline after a model is activated, and by a Celery task. Without an
    active siamese model the "uncertain" share goes to the other sources; whatever "similar"
    cannot fill (no positives yet, no embeddings) goes to exploration. New pairs go ahead of
    older open ones (they reflect the newest model), the sources interleaved by their shares.
    Returns the number of pairs created per source.
    """
    batch = settings.CANDIDATE_BATCH if batch is None else batch
    shares = candidate_mix_parse(settings.CANDIDATE_MIX)
    if sources is not None:
        sources = list(sources)
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"sources: unknown {', '.join(unknown)}; expected some of {', '.join(SOURCES)}")
        shares = {k: v for k, v in shares.items() if k in sources} or {k: 1.0 for k in sources}
    rng = random.Random(seed)
    scorer = _active_pair_scorer()
    embeddings = _active_embeddings()
    if scorer is None and CandidatePair.Source.UNCERTAIN in shares and len(shares) > 1:
        shares.pop(CandidatePair.Source.UNCERTAIN)
    total_share = sum(shares.values()) or 1.0
    want = _split(batch, {k: v / total_share for k, v in shares.items()})

    catalog = _Catalog.load()
    seen = _Seen()
    made: dict[str, list[tuple[int, int, float]]] = {}
    if want.get(CandidatePair.Source.SIMILAR):
        made["similar"] = candidates_similar(n=want["similar"], catalog=catalog, seen=seen, embeddings=embeddings, rng=rng)
        seen.add((a, b) for a, b, _ in made["similar"])
    if want.get(CandidatePair.Source.UNCERTAIN):
        made["uncertain"] = candidates_uncertain(n=want["uncertain"], catalog=catalog, seen=seen, scorer=scorer, rng=rng)
        seen.add((a, b) for a, b, _ in made["uncertain"])
    shortfall = sum(want[k] - len(made.get(k, [])) for k in want if k != CandidatePair.Source.EXPLORATION)
    if CandidatePair.Source.EXPLORATION in want or sources is None:
        n_explore = want.get(CandidatePair.Source.EXPLORATION, 0) + max(0, shortfall)
        made["exploration"] = candidates_exploration(n=n_explore, catalog=catalog, seen=seen, rng=rng)
    return _candidates_insert(made=made, scorer=scorer)


def _candidates_insert(*, made: dict[str, list[tuple[int, int, float]]], scorer) -> dict[str, int]:
    from curation.training.models import ModelVersion

    all_pairs = [(a, b) for rows in made.values() for a, b, _ in rows]
    model_scores: dict[tuple[int, int], float] = {}
    version_id = None
    if scorer is not None and all_pairs:
        model_scores = {pair: float(p) for pair, p in zip(all_pairs, scorer.score(all_pairs)) if not math.isnan(float(p))}
        if ModelVersion.objects.filter(pk=getattr(scorer, "version_id", None)).exists():
            version_id = scorer.version_id
    with transaction.atomic():
        top = CandidatePair.objects.filter(audience=CandidatePair.Audience.STYLIST, state=CandidatePair.State.OPEN).aggregate(m=Max("priority"))["m"]
        base = math.floor(top) + 1.0 if top is not None else 0.0
        rows = []
        for source, found in made.items():
            found = sorted(found, key=lambda t: -t[2])
            for rank, (a, b, _) in enumerate(found):
                a, b = _ordered(a, b)
                rows.append(
                    CandidatePair(
                        a_id=a,
                        b_id=b,
                        source=source,
                        audience=CandidatePair.Audience.STYLIST,
                        # Within (base, base + 1): each source's best first, the sources interleaved.
                        priority=base + 1.0 - (rank + 0.5) / len(found),
                        model_score=model_scores.get((a, b)),
                        model_version_id=version_id,
                    )
                )
        CandidatePair.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return {source: len(found) for source, found in made.items()}
