from django.apps import AppConfig


class CrowdConfig(AppConfig):
    name = "curation.crowd"
    label = "crowd"
