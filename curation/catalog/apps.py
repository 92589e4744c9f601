from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "curation.catalog"
    label = "catalog"

    def ready(self) -> None:
        from django.conf import settings
        from PIL import Image

        # PIL's own decompression-bomb guard follows our pixel limit in every process (web, worker,
        # ML loaders), not only where image_validate runs: it warns above the limit, raises above 2x.
        Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS
