from django.urls import path

from curation.pairs import views

app_name = "pairs"
urlpatterns: list = []
