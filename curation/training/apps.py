from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "curation.training"
    label = "training"
