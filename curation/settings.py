"""Settings for the curation project.

Everything comes from the environment, with embedded defaults so that a fresh checkout runs with
no servers (SQLite and a filesystem Celery broker under ``var/``). Every variable read here is
documented in README.md ("Settings"); tests/test_settings_documented.py keeps the two in step.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    # An empty variable counts as unset, as docker-compose's `${VAR:-}` produces them.
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else raw


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# --- Core -------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", True)
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (e.g. SECRET_KEY=$(openssl rand -hex 32))")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "curation.accounts",
    "curation.catalog",
    "curation.pairs",
    "curation.crowd",
    "curation.review",
    "curation.training",
    "curation.discovery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "curation.urls"
WSGI_APPLICATION = "curation.wsgi.application"
ASGI_APPLICATION = "curation.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "curation.accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh checkout has no var/ yet; SQLite cannot create its file without the folder.
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server and the worker read while the other writes.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update({"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- I18N -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static, media, artifacts -----------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
ARTIFACTS_ROOT = Path(env_str("ARTIFACTS_ROOT", str(VAR_DIR / "artifacts")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Whitenoise serves /static/ from the app itself in production; in DEBUG it reads app dirs live.
WHITENOISE_USE_FINDERS = DEBUG
# Media (product images) are served by Django itself unless SERVE_MEDIA is off (a CDN or nginx).
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)

# --- Security when DEBUG is off ---------------------------------------------------------------
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- Uploads ------------------------------------------------------------------------------------
MAX_IMAGE_BYTES = env_int("MAX_IMAGE_BYTES", 10 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_IMAGE_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_IMAGE_BYTES + 1024 * 1024

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "curation.accounts.authentication.CachedTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_USER", "6000/hour"),
        "photo_search": env_str("API_THROTTLE_PHOTO_SEARCH", "120/minute"),
        "crowd_burst": env_str("CROWD_RATE_LIMIT", "60/minute"),
    },
}
# How long a web process may answer an API token from the cache instead of two queries
# (curation.accounts.authentication: revocations and role changes drop entries at once); 0 = off.
API_TOKEN_CACHE_SECONDS = env_int("API_TOKEN_CACHE_SECONDS", 60)
SPECTACULAR_SETTINGS = {
    "TITLE": "Fashion curation API",
    "DESCRIPTION": "Pair labeling, crowd queue, catalog review, model registry and discovery.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc are served from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Cache (throttling, per-process model version checks) -------------------------------------
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["CACHE_URL"]}
        if os.environ.get("CACHE_URL")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600)}
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for a retry
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "curation.training.tasks.embed_*": {"queue": env_str("CELERY_EMBED_QUEUE", "default")},
    "curation.training.tasks.train_*": {"queue": env_str("CELERY_TRAIN_QUEUE", "default")},
    "curation.discovery.tasks.embed_*": {"queue": env_str("CELERY_EMBED_QUEUE", "default")},
}
CELERY_BEAT_SCHEDULE = {
    "retrain-when-enough-new-labels": {
        "task": "curation.training.tasks.retrain_if_enough_labels",
        "schedule": timedelta(seconds=env_int("RETRAIN_CHECK_SECONDS", 600)),
    },
}

# --- ML -----------------------------------------------------------------------------------------
ML_BACKBONE = env_str("ML_BACKBONE", "resnet50")
# "imagenet" (torchvision's weights enum: torch hub cache or download), a path to a state dict, or "none".
ML_WEIGHTS = env_str("ML_WEIGHTS", "imagenet")
ML_IMAGE_SIZE = env_int("ML_IMAGE_SIZE", 224)
ML_DEVICE = env_str("ML_DEVICE", "auto")
ML_BATCH_SIZE = env_int("ML_BATCH_SIZE", 32)
ML_LOADER_WORKERS = env_int("ML_LOADER_WORKERS", 1)
ML_BF16 = env_bool("ML_BF16", True)
ML_INDEX_EXACT_BELOW = env_int("ML_INDEX_EXACT_BELOW", 50_000)
ML_INDEX_PCA_DIM = env_int("ML_INDEX_PCA_DIM", 256)

# --- Curation workflow --------------------------------------------------------------------------
PAIR_RESERVATION_SECONDS = env_int("PAIR_RESERVATION_SECONDS", 300)
# How far back a labeler may undo their own decisions (one at a time, newest first).
PAIR_UNDO_SECONDS = env_int("PAIR_UNDO_SECONDS", 900)
# Visual neighbours looked up per item of a known positive pair ("similar to observed" candidates).
CANDIDATE_NEIGHBOURS = env_int("CANDIDATE_NEIGHBOURS", 10)
# Share of new candidates per source: similar-to-observed, uncertain, exploration.
CANDIDATE_MIX = env_str("CANDIDATE_MIX", "similar=0.5,uncertain=0.35,exploration=0.15")
CANDIDATE_BATCH = env_int("CANDIDATE_BATCH", 500)
CROWD_VOTES_PER_PAIR = env_int("CROWD_VOTES_PER_PAIR", 3)
CROWD_GOLD_RATE = env_float("CROWD_GOLD_RATE", 0.10)
CROWD_MIN_GOLD_ANSWERS = env_int("CROWD_MIN_GOLD_ANSWERS", 10)
CROWD_MIN_GOLD_ACCURACY = env_float("CROWD_MIN_GOLD_ACCURACY", 0.7)
CROWD_ESCALATE_BELOW = env_float("CROWD_ESCALATE_BELOW", 0.7)
CROWD_DAILY_CAP = env_int("CROWD_DAILY_CAP", 2000)
CROWD_MIN_SECONDS_PER_DECISION = env_float("CROWD_MIN_SECONDS_PER_DECISION", 1.0)
# When a crowd pair gets its last vote, aggregation (a Dawid-Skene refit over every valid vote)
# runs this many seconds later, once for the whole burst of pairs completed meanwhile.
CROWD_AGGREGATE_DELAY_SECONDS = env_int("CROWD_AGGREGATE_DELAY_SECONDS", 60)
FLAG_MAX_PATH_RATIO = env_float("FLAG_MAX_PATH_RATIO", 0.1)
FLAG_REFLAG_MAX_PATH_RATIO = env_float("FLAG_REFLAG_MAX_PATH_RATIO", 0.01)
# Colours have their own thresholds: a flat vocabulary of near-synonyms (Navy Blue, Blue, Black)
# that the features separate far less well than categories; at the category default, colour flags
# on the real photos were three quarters false (bench/colour_flags.py).
FLAG_COLOUR_MAX_PATH_RATIO = env_float("FLAG_COLOUR_MAX_PATH_RATIO", 0.01)
FLAG_COLOUR_REFLAG_MAX_PATH_RATIO = env_float("FLAG_COLOUR_REFLAG_MAX_PATH_RATIO", 0.001)
# Sample weight of products whose category (or colour) a merchandiser confirmed or fixed in review:
# their labels are known right, so the next model run fits them harder than unreviewed ones.
REVIEW_VERIFIED_SAMPLE_WEIGHT = env_float("REVIEW_VERIFIED_SAMPLE_WEIGHT", 3.0)
# Flags the review page loads at once (most confident first); the rest come after the next reload.
REVIEW_PAGE_FLAGS = env_int("REVIEW_PAGE_FLAGS", 200)
RETRAIN_MIN_NEW_LABELS = env_int("RETRAIN_MIN_NEW_LABELS", 200)
RETRAIN_LOCK_STALE_SECONDS = env_int("RETRAIN_LOCK_STALE_SECONDS", 900)
MODEL_RELOAD_CHECK_SECONDS = env_float("MODEL_RELOAD_CHECK_SECONDS", 2.0)
# Retraining pipeline (curation/training): the held-out slice (by product model, stable across
# runs) that decides whether a new model is "not worse", the validation slice for model selection,
# epochs, neighbour-pair augmentation (0 = off) and how much worse a metric may be and still count
# as not worse.
TRAIN_HOLDOUT_PERCENT = env_int("TRAIN_HOLDOUT_PERCENT", 15)
TRAIN_VAL_PERCENT = env_int("TRAIN_VAL_PERCENT", 15)
TRAIN_CATEGORY_EPOCHS = env_int("TRAIN_CATEGORY_EPOCHS", 30)
TRAIN_CATEGORY_MIN_STEPS = env_int("TRAIN_CATEGORY_MIN_STEPS", 300)
TRAIN_SIAMESE_EPOCHS = env_int("TRAIN_SIAMESE_EPOCHS", 40)
TRAIN_SIAMESE_PATIENCE = env_int("TRAIN_SIAMESE_PATIENCE", 8)
TRAIN_SIAMESE_CATEGORY_DIM = env_int("TRAIN_SIAMESE_CATEGORY_DIM", 32)
# Side attributes the pair model and the outfit scorer read beside the image features: Product
# fields (gender, usage, season, colour, brand) or keys of a product's imported attributes; "auto"
# stands for gender, usage, season, colour and every imported attribute, so a catalog's own
# properties count without being named. An attribute with fewer than two values seen on two or more
# training products, or one nearly unique per product, is left out by itself, so a catalog without
# them costs nothing. "none" = no side attributes (an empty variable counts as unset);
# TRAIN_SIAMESE_ATTRIBUTE_DIM = 0 turns them off for the pair model alone.
TRAIN_SIDE_ATTRIBUTES = [name for name in env_list("TRAIN_SIDE_ATTRIBUTES", "auto") if name.lower() != "none"]
TRAIN_SIAMESE_ATTRIBUTE_DIM = env_int("TRAIN_SIAMESE_ATTRIBUTE_DIM", 8)
TRAIN_SIAMESE_REFIT = env_bool("TRAIN_SIAMESE_REFIT", True)
TRAIN_OUTFIT_EPOCHS = env_int("TRAIN_OUTFIT_EPOCHS", 20)
TRAIN_NEIGHBOUR_PAIRS_K = env_int("TRAIN_NEIGHBOUR_PAIRS_K", 0)
TRAIN_NOT_WORSE_TOLERANCE = env_float("TRAIN_NOT_WORSE_TOLERANCE", 0.005)

# --- Discovery (similar items, replacements, complete-the-look, search by photo) ----------------
# Similar-item searches ask the index for this many times k and filter rows (in stock) afterwards;
# only when too few survive do they pass the admitted ids to the index.
DISCOVERY_OVERFETCH = env_int("DISCOVERY_OVERFETCH", 2)
# Category level that defines an outfit slot (0 root, 1 e.g. "Apparel > Topwear").
DISCOVERY_SLOT_LEVEL = env_int("DISCOVERY_SLOT_LEVEL", 1)
# Complete-the-look scores only a shortlist per slot: this many visual neighbours + popular items.
DISCOVERY_SHORTLIST_NEAREST = env_int("DISCOVERY_SHORTLIST_NEAREST", 40)
DISCOVERY_SHORTLIST_POPULAR = env_int("DISCOVERY_SHORTLIST_POPULAR", 20)
# The outfit scorer picks each slot's item among this many best pair-scored candidates.
DISCOVERY_OUTFIT_POOL = env_int("DISCOVERY_OUTFIT_POOL", 6)
# Largest k a client may ask for on the similar-items and photo-search endpoints.
DISCOVERY_MAX_RESULTS = env_int("DISCOVERY_MAX_RESULTS", 50)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # faiss logs which SIMD build it loaded at INFO on every start.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "faiss.loader": {"level": "WARNING"}},
}
