"""Send open stylist-queue candidates to the crowd queue.

    manage.py crowd_enqueue --limit 500          # the 500 highest-priority open, unlabelled pairs
    manage.py crowd_enqueue --pairs 12,15,40     # exactly these (the others are listed with why)
    manage.py crowd_enqueue --limit 200 --gold   # also mark stylist-decided pairs as gold first
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation.crowd import services


class Command(BaseCommand):
    help = "Move open stylist-queue candidate pairs to the crowd audience (and optionally mark gold pairs)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, help="move at most this many pairs, highest priority first")
        parser.add_argument("--pairs", help="comma-separated candidate pair ids to move")
        parser.add_argument("--gold", action="store_true", help="first mark stylist-decided pairs (stylists agreeing) as gold")

    def handle(self, *args, limit=None, pairs=None, gold=False, **options):
        if limit is None and not pairs:
            raise CommandError("give --limit N or --pairs ID,ID,...")
        pair_ids = None
        if pairs:
            try:
                pair_ids = [int(x) for x in pairs.split(",") if x.strip()]
            except ValueError as exc:
                raise CommandError(f"--pairs must be comma-separated integers, got {pairs!r}") from exc
        if gold:
            marked = services.gold_pairs_mark()
            self.stdout.write(f"marked {len(marked)} pair(s) as gold")
        try:
            report = services.crowd_enqueue(pair_ids=pair_ids, limit=limit)
        except services.CrowdError as exc:
            raise CommandError(str(exc)) from exc
        for pair_id, reason in report.skipped.items():
            self.stderr.write(f"pair {pair_id}: not moved: {reason}")
        self.stdout.write(self.style.SUCCESS(f"moved {len(report.moved)} pair(s) to the crowd queue"))
