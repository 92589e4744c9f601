from django.urls import path

from curation.review import views

app_name = "review"
urlpatterns: list = []
