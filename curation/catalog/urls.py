from django.urls import path

from curation.catalog import views

app_name = "catalog"
urlpatterns: list = [
    path("", views.product_list, name="product-list"),
]
