"""Admin pages for every catalog table.

Writes still go through services: a category change made here is an audited CategoryChange, an
uploaded image is validated like an imported one, and the audit tables are read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.html import format_html

from curation.catalog import services
from curation.catalog.models import AttributeChange, Category, CategoryChange, DemoTruth, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["path", "level", "product_count"]
    search_fields = ["path", "name"]
    readonly_fields = ["path", "level"]

    def get_readonly_fields(self, request, obj=None):
        # Renaming or moving a node would have to rewrite every descendant's path: not offered.
        return ["name", "parent", "path", "level"] if obj else ["path", "level"]

    @admin.display(description="products")
    def product_count(self, obj: Category) -> int:
        return obj.products.count()

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = services.category_create(name=form.cleaned_data["name"], parent=form.cleaned_data.get("parent"))
        obj.pk, obj.path, obj.level = created.pk, created.path, created.level
        obj._state.adding = False
        obj._state.db = created._state.db


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        exclude = ["image_sha256", "image_width", "image_height"]

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        if isinstance(upload, UploadedFile):  # a new upload, not the image already stored
            try:
                self.validated_image = services.image_validate(upload)
            except services.ImageValidationError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return upload


class CategoryChangeInline(admin.TabularInline):
    model = CategoryChange
    fk_name = "product"
    extra = 0
    can_delete = False
    fields = ["changed_at", "old_category", "new_category", "changed_by", "reason", "flag"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ["sku", "thumbnail", "title", "category", "colour", "in_stock", "updated_at"]
    list_filter = ["in_stock", "category__level", "gender"]
    search_fields = ["sku", "title", "brand", "product_model"]
    autocomplete_fields = ["category"]
    readonly_fields = ["thumbnail", "image_sha256", "image_width", "image_height", "created_at", "updated_at"]
    inlines = [CategoryChangeInline]
    list_select_related = ["category"]

    @admin.display(description="image")
    def thumbnail(self, obj: Product) -> str:
        if not obj.image:
            return "-"
        return format_html('<img src="{}" alt="" style="height:64px">', obj.image.url)

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        checked = getattr(form, "validated_image", None)
        if checked is not None:
            name, _ = services.image_store(data=checked.data, sha256=checked.sha256, extension=checked.extension)
            obj.image = name  # a stored name: the upload itself is not saved a second time
            obj.image_sha256, obj.image_width, obj.image_height = checked.sha256, checked.width, checked.height
        new_category = obj.category
        if not change:
            obj.save()
            CategoryChange.objects.create(
                product=obj, old_category=None, new_category=new_category, changed_by=request.user, reason="created in admin"
            )
            return
        old_category_id = Product.objects.values_list("category_id", flat=True).get(pk=obj.pk)
        obj.category_id = old_category_id
        obj.save()
        if new_category.pk != old_category_id:
            services.product_category_change(product=obj, new_category=new_category, user=request.user, reason="changed in admin")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit rows and demo truth are written by services only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CategoryChange)
class CategoryChangeAdmin(ReadOnlyAdmin):
    list_display = ["changed_at", "product", "old_category", "new_category", "changed_by", "reason"]
    list_filter = ["changed_at"]
    search_fields = ["product__sku", "reason"]
    list_select_related = ["product", "old_category", "new_category", "changed_by"]


@admin.register(AttributeChange)
class AttributeChangeAdmin(ReadOnlyAdmin):
    list_display = ["changed_at", "product", "attribute", "old_value", "new_value", "changed_by", "reason"]
    list_filter = ["attribute"]
    search_fields = ["product__sku", "reason"]
    list_select_related = ["product", "changed_by"]


@admin.register(DemoTruth)
class DemoTruthAdmin(ReadOnlyAdmin):
    list_display = ["product", "true_category", "miscategorised", "formality", "hue", "pattern"]
    list_filter = ["miscategorised", "formality", "pattern"]
    search_fields = ["product__sku"]
    list_select_related = ["product", "true_category"]
