from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "curation.catalog"
    label = "catalog"
