from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "curation.discovery"
    label = "discovery"
