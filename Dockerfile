# The application image used by docker-compose.yml for web, worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

# libgomp: OpenMP for torch and faiss on CPU.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# CPU wheels of torch by default (much smaller); build with
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 for a GPU worker image.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY curation ./curation
COPY ml ./ml
RUN pip install --extra-index-url "${TORCH_INDEX}" .

COPY . .

# Static files are collected at build time with the production storage (hashed names + gzip);
# the key below exists only for this build step.
RUN DEBUG=0 SECRET_KEY=collectstatic-build-only STATIC_ROOT=/app/staticfiles VAR_DIR=/tmp/var \
    python manage.py collectstatic --noinput

RUN useradd --create-home --uid 1000 app \
    && mkdir -p /data/media /data/artifacts /data/var /home/app/.cache/torch \
    && chown -R app:app /data /home/app/.cache
USER app

EXPOSE 8000
CMD ["gunicorn", "curation.wsgi:application", "--bind=0.0.0.0:8000", "--workers=3"]
