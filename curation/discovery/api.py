"""Discovery JSON endpoints: similar items, replacements, complete-the-look, photo search, scores.

Thin: parse the request, call a selector or service, shape the answer. Every answer says which
model version produced it. Token and session authentication both work (settings.REST_FRAMEWORK).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from curation.accounts.roles import DISCOVERY, role_permission
from curation.catalog.models import Product
from curation.discovery import selectors, services
from curation.discovery.images import UploadRejected, image_upload_check
from curation.discovery.serializers import (
    DiscoveryCompleteQuerySerializer,
    DiscoveryCompleteTheLookSerializer,
    DiscoveryErrorSerializer,
    DiscoveryListQuerySerializer,
    DiscoveryOutfitScoreRequestSerializer,
    DiscoveryOutfitScoreSerializer,
    DiscoveryPairScoreRequestSerializer,
    DiscoveryPairScoreSerializer,
    DiscoveryPhotoSearchResultSerializer,
    DiscoveryPhotoSearchSerializer,
    DiscoveryProductListSerializer,
    product_card,
)

TAG = ["discovery"]
CARD_EXAMPLE = {
    "id": 42, "sku": "SKU00042", "title": "Slim oxford shirt", "brand": "Acme", "category": "Apparel > Topwear > Shirts",
    "colour": "Blue", "image_url": "/media/products/SKU00042.jpg", "in_stock": True, "url": "/discover/products/SKU00042/",
    "score": 0.93,
}
ERRORS = {
    401: OpenApiResponse(DiscoveryErrorSerializer, description="Not signed in: session cookie or `Authorization: Token <key>`."),
    403: OpenApiResponse(DiscoveryErrorSerializer, description="Signed in without a discovery role."),
}
NOT_FOUND = {404: OpenApiResponse(DiscoveryErrorSerializer, description="No product with this sku.")}
UNAVAILABLE = {503: OpenApiResponse(DiscoveryErrorSerializer, description="The model this answer needs is not active yet.")}


def _product_or_404(sku: str) -> Product:
    try:
        return selectors.product_by_sku(sku=sku)
    except Product.DoesNotExist as exc:
        raise NotFound(f"No product with sku {sku!r}.") from exc


def _list_answer(product: Product | None, listing: selectors.ProductList) -> dict:
    answer = {
        "model_version": listing.model_version,
        "results": [product_card(r.product, r.score) for r in listing.items],
        "message": listing.message,
    }
    if product is not None:
        answer["product"] = product_card(selectors.Card.of(product))
    return answer


def _error(detail: str, code: int, kind: str | None = None) -> Response:
    body = {"detail": detail}
    if kind:
        body["code"] = kind
    return Response(body, status=code)


class DiscoveryAPIView(APIView):
    permission_classes = [role_permission(*DISCOVERY)]


class SimilarProductsAPI(DiscoveryAPIView):
    @extend_schema(
        tags=TAG,
        summary="You may also like: visually nearest products",
        parameters=[DiscoveryListQuerySerializer],
        responses={200: DiscoveryProductListSerializer, 400: DiscoveryErrorSerializer, **ERRORS, **NOT_FOUND},
        examples=[
            OpenApiExample(
                "Similar items",
                response_only=True,
                value={"product": {**CARD_EXAMPLE, "score": None}, "model_version": 7, "results": [CARD_EXAMPLE], "message": None},
            ),
            OpenApiExample(
                "No active model",
                response_only=True,
                value={"product": CARD_EXAMPLE, "model_version": None, "results": [], "message": selectors.NO_EMBEDDINGS},
            ),
        ],
    )
    def get(self, request, sku: str):
        query = DiscoveryListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        product = _product_or_404(sku)
        listing = selectors.similar_products(product=product, k=query.validated_data["k"], in_stock_only=query.validated_data["in_stock"])
        return Response(_list_answer(product, listing))


class ReplacementsAPI(DiscoveryAPIView):
    @extend_schema(
        tags=TAG,
        summary="Replacements for an out-of-stock product: same category, in stock, most similar",
        parameters=[OpenApiParameter("k", OpenApiTypes.INT, description="How many products (default 12).")],
        responses={200: DiscoveryProductListSerializer, 400: DiscoveryErrorSerializer, **ERRORS, **NOT_FOUND},
        examples=[
            OpenApiExample(
                "Replacements",
                response_only=True,
                value={"product": {**CARD_EXAMPLE, "in_stock": False}, "model_version": 7, "results": [CARD_EXAMPLE], "message": None},
            ),
        ],
    )
    def get(self, request, sku: str):
        query = DiscoveryListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        product = _product_or_404(sku)
        listing = selectors.replacements_for(product=product, k=query.validated_data["k"])
        return Response(_list_answer(product, listing))


class CompleteTheLookAPI(DiscoveryAPIView):
    @extend_schema(
        tags=TAG,
        summary="Complete the look: best-scored items per other category slot and a generated outfit",
        parameters=[DiscoveryCompleteQuerySerializer],
        responses={200: DiscoveryCompleteTheLookSerializer, 400: DiscoveryErrorSerializer, **ERRORS, **NOT_FOUND},
        examples=[
            OpenApiExample(
                "Complete the look",
                response_only=True,
                value={
                    "product": CARD_EXAMPLE, "pair_model_version": 9, "outfit_model_version": 10, "embedding_version": 7,
                    "slots": [{"slot": "Bottomwear", "results": [{**CARD_EXAMPLE, "sku": "SKU00077", "category": "Apparel > Bottomwear > Jeans"}]}],
                    "outfit": {"items": [CARD_EXAMPLE], "score": 0.81, "model_version": 10},
                    "message": None, "outfit_message": None,
                },
            ),
        ],
    )
    def get(self, request, sku: str):
        query = DiscoveryCompleteQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        product = _product_or_404(sku)
        look = selectors.complete_the_look(product=product, per_slot=query.validated_data["per_slot"])
        outfit = None
        if look.outfit and look.outfit_score is not None:
            outfit = {"items": [product_card(p) for p in look.outfit], "score": round(look.outfit_score, 6), "model_version": look.outfit_model_version}
        return Response(
            {
                "product": product_card(selectors.Card.of(product)),
                "pair_model_version": look.pair_model_version,
                "outfit_model_version": look.outfit_model_version,
                "embedding_version": look.embedding_version,
                "slots": [{"slot": s.slot, "results": [product_card(r.product, r.score) for r in s.items]} for s in look.slots],
                "outfit": outfit,
                "message": look.message,
                "outfit_message": look.outfit_message,
            }
        )


class PhotoSearchAPI(DiscoveryAPIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [UserRateThrottle, ScopedRateThrottle]
    throttle_scope = "photo_search"

    @extend_schema(
        tags=TAG,
        summary="Search by photo: the most similar in-stock products",
        description=(
            "Upload a photo as multipart form data. The content is checked (not the file name): JPEG, PNG or WebP, "
            "at most MAX_IMAGE_BYTES bytes and MAX_IMAGE_PIXELS pixels, not truncated. The photo is discarded "
            "after the search unless `store=1`. Throttled per user (scope `photo_search`)."
        ),
        request={"multipart/form-data": DiscoveryPhotoSearchSerializer},
        responses={
            200: DiscoveryPhotoSearchResultSerializer,
            400: OpenApiResponse(DiscoveryErrorSerializer, description="Truncated/corrupt image, unknown category or bad field."),
            413: OpenApiResponse(DiscoveryErrorSerializer, description="Too many bytes or pixels (decompression bomb)."),
            415: OpenApiResponse(DiscoveryErrorSerializer, description="Not a JPEG, PNG or WebP image, whatever its name."),
            429: OpenApiResponse(DiscoveryErrorSerializer, description="Too many searches: wait and retry."),
            **ERRORS,
            **UNAVAILABLE,
        },
        examples=[
            OpenApiExample(
                "Found",
                response_only=True,
                value={"model_version": 7, "results": [CARD_EXAMPLE], "message": None, "stored": None},
            ),
            OpenApiExample(
                "Not an image",
                response_only=True,
                status_codes=["415"],
                value={"detail": "notes.jpg is not an image we can read (its content is not JPEG, PNG or WebP, whatever its name says).", "code": "not_an_image"},
            ),
        ],
    )
    def post(self, request):
        # The photo is judged first, by image_upload_check, so that a missing, empty or bad file
        # gets its own message rather than the serializer's generic one.
        try:
            checked = image_upload_check(upload=request.FILES.get("image"))
        except UploadRejected as exc:
            return _error(exc.message, exc.status, exc.code)
        form = DiscoveryPhotoSearchSerializer(data=request.data)
        if not form.is_valid():
            return Response(form.errors, status=status.HTTP_400_BAD_REQUEST)
        data = form.validated_data
        try:
            category_ids = selectors.categories_matching(names=data["category"]) if data["category"] else None
            listing = selectors.photo_search(image=checked.image, k=data["k"], category_ids=category_ids)
        except selectors.DiscoveryInputError as exc:
            return _error(str(exc), 400, "invalid")
        except selectors.DiscoveryUnavailable as exc:
            return _error(str(exc), 503, "no_model")
        answer = _list_answer(None, listing)
        answer["stored"] = services.photo_upload_store(checked=checked) if data["store"] else None
        return Response(answer)


class PairScoreAPI(DiscoveryAPIView):
    @extend_schema(
        tags=TAG,
        summary="Pair score f(a, b) from the active siamese model",
        request=DiscoveryPairScoreRequestSerializer,
        responses={200: DiscoveryPairScoreSerializer, 400: DiscoveryErrorSerializer, **ERRORS, **UNAVAILABLE},
        examples=[
            OpenApiExample("Request", request_only=True, value={"sku_a": "SKU00042", "sku_b": "SKU00077"}),
            OpenApiExample("Answer", response_only=True, value={"sku_a": "SKU00042", "sku_b": "SKU00077", "score": 0.87, "model_version": 9}),
        ],
    )
    def post(self, request):
        form = DiscoveryPairScoreRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            products, score, version = selectors.pair_score(sku_a=form.validated_data["sku_a"], sku_b=form.validated_data["sku_b"])
        except selectors.DiscoveryInputError as exc:
            return _error(str(exc), 400, "invalid")
        except selectors.DiscoveryUnavailable as exc:
            return _error(str(exc), 503, "no_model")
        return Response({"sku_a": products[0].sku, "sku_b": products[1].sku, "score": round(score, 6), "model_version": version})


class OutfitScoreAPI(DiscoveryAPIView):
    @extend_schema(
        tags=TAG,
        summary="Outfit score f(i, j, k, ...) from the active outfit scorer",
        request=DiscoveryOutfitScoreRequestSerializer,
        responses={200: DiscoveryOutfitScoreSerializer, 400: DiscoveryErrorSerializer, **ERRORS, **UNAVAILABLE},
        examples=[
            OpenApiExample("Request", request_only=True, value={"skus": ["SKU00042", "SKU00077", "SKU00103"]}),
            OpenApiExample("Answer", response_only=True, value={"skus": ["SKU00042", "SKU00077", "SKU00103"], "score": 0.74, "model_version": 10}),
        ],
    )
    def post(self, request):
        form = DiscoveryOutfitScoreRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            products, score, version = selectors.outfit_score(skus=form.validated_data["skus"])
        except selectors.DiscoveryInputError as exc:
            return _error(str(exc), 400, "invalid")
        except selectors.DiscoveryUnavailable as exc:
            return _error(str(exc), 503, "no_model")
        return Response({"skus": [p.sku for p in products], "score": round(score, 6), "model_version": version})


urlpatterns = [
    path("discover/products/<str:sku>/similar/", SimilarProductsAPI.as_view(), name="discovery-similar"),
    path("discover/products/<str:sku>/replacements/", ReplacementsAPI.as_view(), name="discovery-replacements"),
    path("discover/products/<str:sku>/complete-the-look/", CompleteTheLookAPI.as_view(), name="discovery-complete"),
    path("discover/search/", PhotoSearchAPI.as_view(), name="discovery-photo-search"),
    path("scores/pair/", PairScoreAPI.as_view(), name="score-pair"),
    path("scores/outfit/", OutfitScoreAPI.as_view(), name="score-outfit"),
]
