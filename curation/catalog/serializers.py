from __future__ import annotations

from rest_framework import serializers

from curation.catalog.models import Category, Product


class CategorySerializer(serializers.ModelSerializer):
    product_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Category
        fields = ["id", "name", "path", "level", "parent", "product_count"]


class ProductSerializer(serializers.ModelSerializer):
    # "category" is the path, as in the labeling contract's PRODUCT; category_id for filtering.
    category = serializers.CharField(source="category.path", read_only=True)
    category_id = serializers.IntegerField(read_only=True)
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = [
            "id", "sku", "title", "brand", "gender", "category", "category_id", "colour", "season", "usage",
            "product_model", "attributes", "in_stock", "image_url", "image_sha256", "image_width", "image_height",
            "category_verified_at", "created_at", "updated_at",
        ]

    def get_image_url(self, product: Product) -> str | None:
        if not product.image:
            return None
        request = self.context.get("request")
        url = product.image.url
        return request.build_absolute_uri(url) if request else url


class ProductQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, help_text="words in title or brand, or an exact SKU")
    category = serializers.IntegerField(required=False, help_text="category id; includes its descendants")
    category_path = serializers.CharField(required=False, allow_blank=True, help_text="e.g. 'Apparel > Topwear'")
    colour = serializers.CharField(required=False, allow_blank=True)
    in_stock = serializers.BooleanField(required=False, allow_null=True, default=None)
