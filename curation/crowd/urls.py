from django.urls import path

from curation.crowd import views

app_name = "crowd"
urlpatterns: list = []
