from django.urls import path

from curation.discovery import views

app_name = "discovery"
urlpatterns = [
    path("products/<str:sku>/", views.product_page, name="product"),
    path("search/", views.photo_search_page, name="search"),
]
