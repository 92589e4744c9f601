from django.apps import AppConfig


class PairsConfig(AppConfig):
    name = "curation.pairs"
    label = "pairs"
