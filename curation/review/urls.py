from django.urls import path

from curation.review import views

app_name = "review"
urlpatterns = [
    path("", views.review_page, name="review"),
    path("products/<str:sku>/history/", views.product_history, name="history"),
]
