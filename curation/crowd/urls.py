from django.urls import path

from curation.crowd import views

app_name = "crowd"
urlpatterns = [
    path("label/", views.label, name="label"),
    path("quality/", views.quality, name="quality"),
]
