from django.urls import path

from curation.catalog import views

app_name = "catalog"
urlpatterns: list = []
