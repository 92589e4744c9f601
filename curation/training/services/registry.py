"""The model registry: activation and rollback, each one transaction."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from curation.training.models import EmbeddingSet, ModelVersion


class RegistryError(ValueError):
    """An activation or rollback that the registry refuses (the message says why)."""


ACTIVATABLE = (ModelVersion.Status.READY, ModelVersion.Status.RETIRED, ModelVersion.Status.ACTIVE)
SERVED_KINDS = (ModelVersion.Kind.CATEGORY, ModelVersion.Kind.SIAMESE, ModelVersion.Kind.OUTFIT)


def model_version_make_active(*, version: ModelVersion, switch_embeddings: bool = True) -> ModelVersion:
    """Retire the active version of the kind and activate ``version``, in one transaction.

    With ``switch_embeddings`` the version's own embedding set becomes active when the active set
    is of another feature space (a model is useless on features it was not trained on).
    """
    from curation.training.services.embeddings import _serving_changed, embedding_set_activate

    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status not in ACTIVATABLE:
            raise RegistryError(
                f"{version.kind} version {version.pk} is {version.status}: only ready or retired versions can be activated"
            )
        if version.status != ModelVersion.Status.ACTIVE:
            ModelVersion.objects.select_for_update().filter(kind=version.kind, status=ModelVersion.Status.ACTIVE).update(
                status=ModelVersion.Status.RETIRED
            )
            version.status = ModelVersion.Status.ACTIVE
            version.activated_at = timezone.now()
            version.save(update_fields=["status", "activated_at"])
        if switch_embeddings and version.embedding_set_id:
            active_set = EmbeddingSet.objects.filter(is_active=True).first()
            own = version.embedding_set
            if active_set is None or active_set.backbone != own.backbone:
                embedding_set_activate(embedding_set=own)
        _serving_changed()
    return version


def model_version_activate(*, version_id: int) -> ModelVersion:
    """An admin's Activate button."""
    try:
        version = ModelVersion.objects.get(pk=version_id)
    except ModelVersion.DoesNotExist:
        raise RegistryError(f"model version {version_id} does not exist") from None
    if version.kind == ModelVersion.Kind.BACKBONE:
        raise RegistryError("a backbone is activated with its embedding set: retrain or activate a model trained on it")
    return model_version_make_active(version=version)


def previous_active_version(*, kind: str) -> ModelVersion | None:
    """The version of ``kind`` that was active most recently before the current one."""
    return (
        ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.RETIRED)
        .order_by(F("activated_at").desc(nulls_last=True), "-id")
        .first()
    )


def model_version_rollback(*, kind: str | None = None) -> list[ModelVersion]:
    """Put back the previously active version of ``kind``; without a kind, of every kind that the
    newest run activated (a whole release). All switches happen in one transaction."""
    with transaction.atomic():
        if kind is not None:
            if kind not in ModelVersion.Kind.values or kind == ModelVersion.Kind.BACKBONE:
                raise RegistryError(f"kind must be one of {', '.join(k for k in SERVED_KINDS)}, not {kind!r}")
            kinds = [kind]
        else:
            newest = (
                ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE, kind__in=SERVED_KINDS, run__isnull=False)
                .order_by("-activated_at", "-id")
                .first()
            )
            if newest is None:
                raise RegistryError("no active model to roll back")
            kinds = list(
                ModelVersion.objects.filter(
                    status=ModelVersion.Status.ACTIVE, kind__in=SERVED_KINDS, run_id=newest.run_id
                ).values_list("kind", flat=True)
            )
        restored = []
        for k in kinds:
            previous = previous_active_version(kind=k)
            if previous is None:
                raise RegistryError(f"no earlier {k} version to roll back to")
            restored.append(model_version_make_active(version=previous))
    return restored
