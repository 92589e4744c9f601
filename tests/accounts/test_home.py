import pytest

from curation.accounts.roles import ROLES


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_home_shows_each_role_its_tile(role_client, role):
    response = role_client(role).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-role="{role}"' in html
    for other in set(ROLES) - {role, "admin"} if role != "admin" else []:
        assert f'data-role="{other}"' not in html


@pytest.mark.django_db
def test_home_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_random_weights_show_a_visible_warning(role_client, settings):
    settings.ML_WEIGHTS = "none"
    assert "randomly initialised ResNet-50 weights" in role_client("stylist").get("/").content.decode()
    settings.ML_WEIGHTS = "imagenet"
    assert "randomly initialised" not in role_client("crowd").get("/").content.decode()
