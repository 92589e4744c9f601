"""Every JSON endpoint, by domain. Each app's api.py owns its urlpatterns."""

from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token

urlpatterns = [
    path("token/", obtain_auth_token, name="api-token"),
    path("", include("curation.catalog.api")),
    path("", include("curation.pairs.api")),
    path("", include("curation.crowd.api")),
    path("", include("curation.review.api")),
    path("", include("curation.training.api")),
    path("", include("curation.discovery.api")),
]
