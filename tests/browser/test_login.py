import pytest

from curation.accounts.roles import ROLES


@pytest.mark.parametrize("role", ROLES)
def test_each_role_logs_in_and_sees_its_home(page, live_server, login_as, role):
    login_as(page, live_server, role)
    assert page.locator(f'[data-role="{role}"]').is_visible()
    assert role in page.locator('[data-testid="current-user"]').inner_text()
    # Every page's CSS comes from the app itself, not a CDN.
    css = page.evaluate("Array.from(document.styleSheets).map(s => s.href)")
    assert css and all(href.startswith(live_server.url) for href in css if href)
    assert page.js_errors == []


def test_wrong_password_stays_on_login_with_message(page, live_server, login_as):
    login_as(page, live_server, "crowd")
    page.click("text=Log out")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "crowd-b")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text().startswith("Your username and password didn't match")
