# The portal and its search service in one image. The index and the site are built into the
# image (read-only at run time); run several containers behind a load balancer for scale.
FROM python:3.11-slim

WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 NO_MKDOCS_2_WARNING=1 \
    KB_HOST=0.0.0.0 KB_PORT=8000 KB_AUTH=proxy \
    KB_INDEX_DIR=/app/.kb/index KB_SITE_DIR=/app/site

COPY pyproject.toml constraints.txt README.md ./
COPY search_service ./search_service
RUN pip install -c constraints.txt .

COPY mkdocs.yml CODEOWNERS ./
COPY docs ./docs
COPY overrides ./overrides
COPY playbooks ./playbooks
RUN kb lint && kb index -q && mkdocs build --strict

# Set at run time: KB_TRUSTED_PROXIES, KB_USER_HASH_SECRET, KB_DATABASE_URL (PostgreSQL).
USER nobody
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["kb", "serve", "--no-build", "--workers", "2"]
