"""Aggregate crowd votes now (Dawid-Skene) and escalate doubtful pairs to the stylist queue."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from curation.crowd import services
from curation.crowd.models import AggregatedLabel


class Command(BaseCommand):
    help = "Aggregate every crowd pair with enough valid votes; escalate low-confidence or split pairs to stylists."

    def add_arguments(self, parser):
        parser.add_argument("--method", choices=AggregatedLabel.Method.values, default=AggregatedLabel.Method.DAWID_SKENE)

    def handle(self, *args, method, **options):
        self.stdout.write(f"aggregating crowd votes ({method})…")
        report = services.crowd_aggregate(method=method)
        self.stdout.write(
            self.style.SUCCESS(f"aggregated {report.aggregated} pair(s): {report.decided} settled, {report.escalated} escalated to stylists")
        )
