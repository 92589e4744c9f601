from django.urls import path

from curation.pairs import views

app_name = "pairs"
urlpatterns = [
    path("label/", views.label, name="label"),
    path("outfits/", views.outfit_list, name="outfits"),
    path("outfits/new/", views.outfit_new, name="outfit-new"),
    path("outfits/<int:pk>/", views.outfit_edit, name="outfit-edit"),
    path("outfits/<int:pk>/delete/", views.outfit_delete, name="outfit-delete"),
]
