from django.contrib import admin

from curation.pairs.models import CandidatePair, Outfit, OutfitItem, PairLabel, PairSkip


@admin.register(CandidatePair)
class CandidatePairAdmin(admin.ModelAdmin):
    list_display = ("id", "a", "b", "source", "audience", "state", "priority", "model_score", "is_gold", "reserved_by", "reserved_until")
    list_filter = ("source", "audience", "state", "is_gold")
    raw_id_fields = ("a", "b", "reserved_by", "model_version")
    search_fields = ("a__sku", "b__sku")


@admin.register(PairLabel)
class PairLabelAdmin(admin.ModelAdmin):
    list_display = ("id", "pair", "user", "kind", "value", "created_at", "gold_correct", "too_fast")
    list_filter = ("kind", "value")
    raw_id_fields = ("pair", "user")
    search_fields = ("user__username",)


@admin.register(PairSkip)
class PairSkipAdmin(admin.ModelAdmin):
    list_display = ("pair", "user", "day")
    raw_id_fields = ("pair", "user")


class OutfitItemInline(admin.TabularInline):
    model = OutfitItem
    raw_id_fields = ("product",)
    extra = 0


@admin.register(Outfit)
class OutfitAdmin(admin.ModelAdmin):
    list_display = ("name", "external_id", "source", "created_by", "updated_at")
    list_filter = ("source",)
    search_fields = ("name", "external_id")
    inlines = [OutfitItemInline]
