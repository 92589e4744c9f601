from django.urls import path

from curation.training import views

app_name = "training"
urlpatterns = [
    path("", views.models_page, name="models"),
]
