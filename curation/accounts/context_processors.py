from django.conf import settings

from curation.accounts.roles import user_roles

RANDOM_WEIGHTS_WARNING = (
    "Embeddings use randomly initialised ResNet-50 weights (ML_WEIGHTS=none): suggestions and flags are "
    "weaker than they could be. Set ML_WEIGHTS=imagenet (with the torchvision weights in the torch hub cache) "
    "or ML_WEIGHTS=/path/to/state_dict.pth and retrain."
)


def roles(request):
    context = {"user_roles": user_roles(getattr(request, "user", None))}
    if settings.ML_WEIGHTS.strip().lower() == "none" and getattr(request, "user", None) and request.user.is_authenticated:
        context["ml_warning"] = RANDOM_WEIGHTS_WARNING
    return context
