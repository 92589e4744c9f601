"""Catalog JSON endpoints: products (filtered, paginated, by sku) and the category tree.

Thin: validate the query, call a selector, serialize. Every role that browses the catalog may read.
"""

from __future__ import annotations

from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics

from curation.accounts.roles import BROWSE_CATALOG, role_permission
from curation.catalog import selectors
from curation.catalog.models import Category, Product
from curation.catalog.serializers import CategorySerializer, ProductQuerySerializer, ProductSerializer


class ProductListAPI(generics.ListAPIView):
    permission_classes = [role_permission(*BROWSE_CATALOG)]
    serializer_class = ProductSerializer

    def get_queryset(self):
        query = ProductQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        return selectors.product_list(
            search=params.get("q", ""),
            category_id=params.get("category"),
            category_path=params.get("category_path", ""),
            colour=params.get("colour", ""),
            in_stock=params.get("in_stock"),
        )

    @extend_schema(parameters=[ProductQuerySerializer], summary="List products, filtered and paginated")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ProductDetailAPI(generics.RetrieveAPIView):
    permission_classes = [role_permission(*BROWSE_CATALOG)]
    serializer_class = ProductSerializer

    def get_object(self):
        return get_object_or_404(Product.objects.select_related("category"), sku=self.kwargs["sku"])

    @extend_schema(summary="One product by SKU")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class CategoryListAPI(generics.ListAPIView):
    permission_classes = [role_permission(*BROWSE_CATALOG)]
    serializer_class = CategorySerializer
    queryset = Category.objects.annotate(product_count=Count("products")).order_by("path")

    @extend_schema(summary="The category tree, ordered by path (product_count counts direct products)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


urlpatterns = [
    path("products/", ProductListAPI.as_view(), name="catalog-products"),
    path("products/<str:sku>/", ProductDetailAPI.as_view(), name="catalog-product"),
    path("categories/", CategoryListAPI.as_view(), name="catalog-categories"),
]
