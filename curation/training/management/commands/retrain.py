"""python manage.py retrain [--sync] [--force] [--if-no-active-model]

Without --sync the run is queued for the Celery worker (progress on /models/); with --sync every
step runs here, printing progress lines.
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from curation.training import selectors
from curation.training.models import ModelVersion, PipelineRun
from curation.training.services import PipelineBusy, pipeline_run_execute, pipeline_run_request


class ProgressPrinter:
    """One line per step, rewritten in place on a terminal, throttled elsewhere (log files)."""

    def __init__(self, stream, *, every: float = 1.0):
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.every = every
        self.step = None
        self.last = 0.0

    def __call__(self, step: str, done: int, total: int, detail: dict) -> None:
        now = time.monotonic()
        new_step = step != self.step
        if not new_step and done < total and now - self.last < self.every:
            return
        if new_step and self.step is not None and self.tty:
            self.stream.write("\n")
        self.step, self.last = step, now
        pct = f"{100 * done / total:5.1f}%" if total else "  -  "
        extras = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items() if k != "unit" and v is not None)
        line = f"[{step}] {pct} {done}/{total} {detail.get('unit', '')} {extras}".rstrip()
        self.stream.write(("\r" + line.ljust(100)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.step is not None:
            self.stream.write("\n")


class Command(BaseCommand):
    help = "Retrain the models: embed the catalog, train, evaluate, activate when not worse, refresh candidates."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="run every step in this process with progress lines")
        parser.add_argument("--force", action="store_true", help="activate the new models even if they evaluate worse")
        parser.add_argument(
            "--if-no-active-model", action="store_true", help="do nothing when a model is already active (first start)"
        )

    def handle(self, *args, sync: bool, force: bool, if_no_active_model: bool, **options):
        if if_no_active_model:
            if selectors.any_active_model():
                self.stdout.write("A model is already active: no run queued.")
                return
            in_flight = selectors.run_in_flight()
            if in_flight is not None:
                self.stdout.write(f"Run {in_flight.pk} is already {in_flight.status}: no run queued.")
                return
        if selectors.catalog_size() == 0:
            raise CommandError("the catalog is empty: import products first (manage.py import_catalog or make_demo_catalog)")
        if not sync:
            from curation.celery import ensure_broker_dirs

            ensure_broker_dirs()
        try:
            run = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, forced=force, enqueue=not sync)
        except PipelineBusy as exc:
            raise CommandError(str(exc)) from None
        if not sync:
            self.stdout.write(f"Queued run {run.pk}: the Celery worker runs it; progress on /models/.")
            return
        printer = ProgressPrinter(self.stdout._out if hasattr(self.stdout, "_out") else sys.stdout)
        started = time.monotonic()
        try:
            run = pipeline_run_execute(run_id=run.pk, on_progress=printer)
        except Exception as exc:
            printer.close()
            raise CommandError(f"run {run.pk} failed: {exc}") from exc
        printer.close()
        self.stdout.write(f"Run {run.pk} {run.status} in {time.monotonic() - started:.0f} s.")
        for version in ModelVersion.objects.filter(run=run).order_by("id"):
            figures = ", ".join(f"{k}={v}" for k, v in version.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            self.stdout.write(f"  {version.kind} v{version.pk} {version.status}: {figures}")
            if version.metrics.get("decision"):
                self.stdout.write(f"    {version.metrics['decision']}")
        for name, step in run.steps.items():
            if step.get("state") == "skipped":
                self.stdout.write(f"  step {name} skipped: {step.get('reason', '')}")
