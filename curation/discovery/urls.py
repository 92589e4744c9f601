from django.urls import path

from curation.discovery import views

app_name = "discovery"
urlpatterns: list = []
