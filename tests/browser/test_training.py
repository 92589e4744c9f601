"""An admin retrains from the models page, watches it finish, reads the metrics and rolls back."""

from __future__ import annotations

import pytest

from tests.training.conftest import _small_ml, tiny_catalog, tiny_labels  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

LONG = 600_000  # ms: the whole pipeline runs inside the request on a busy 2-core machine


def _active(kind):
    from curation.training.models import ModelVersion

    return ModelVersion.objects.get(kind=kind, status="active")


def test_admin_retrains_sees_metrics_and_rolls_back(page, live_server, login_as, tiny_labels):
    from curation.training import serving
    from curation.training.models import PipelineRun
    from curation.training.services import pipeline_run_execute, pipeline_run_request

    first = pipeline_run_request(trigger=PipelineRun.Trigger.CLI, enqueue=False)
    first = pipeline_run_execute(run_id=first.pk)
    assert first.status == "succeeded", first.error
    first_siamese = _active("siamese")
    serving.reset()

    login_as(page, live_server, "admin")
    page.goto(f"{live_server.url}/models/")
    page.wait_for_selector("#run-steps tbody tr")
    page.check("#retrain-force")
    page.click("#retrain")
    page.click("#confirm-yes")
    # The page reloads when the run it watches has finished, and says so.
    page.wait_for_selector("text=finished.", timeout=LONG)
    page.wait_for_function("document.getElementById('models-page').dataset.runStatus === 'succeeded'", timeout=LONG)
    bars = page.locator("#run-steps .progress")
    assert bars.count() == 6
    assert all(bars.nth(i).get_attribute("data-percent") == "100" for i in range(6))

    second = PipelineRun.objects.exclude(pk=first.pk).get()
    new_siamese = _active("siamese")
    assert second.status == "succeeded" and new_siamese.run_id == second.pk
    row = page.locator(f'section[data-kind="siamese"] tr[data-version="{new_siamese.pk}"]')
    assert row.get_attribute("data-status") == "active"
    assert "forced" in row.inner_text()  # the decision column
    assert row.locator("td.metric").count() >= 4
    # Training curves of the active pair model are drawn.
    page.wait_for_selector('#loss-plot svg path[data-series="loss"]')

    page.click("#rollback-all")
    page.click("#confirm-yes")
    page.wait_for_selector(f'section[data-kind="siamese"] tr[data-version="{first_siamese.pk}"][data-status="active"]', timeout=60_000)
    assert _active("siamese").pk == first_siamese.pk
    assert _active("outfit").run_id == first.pk
    assert page.js_errors == []


def test_stylist_sees_models_but_no_buttons(page, live_server, login_as):
    login_as(page, live_server, "stylist")
    page.goto(f"{live_server.url}/models/")
    page.wait_for_selector("#run-summary")
    assert page.locator("#retrain").count() == 0
    assert page.locator("#rollback-all").count() == 0
    assert page.js_errors == []
