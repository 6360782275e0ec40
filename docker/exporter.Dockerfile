# The rerank-doctor exporter: `rerank-doctor export` in a small Python image.
# Build context: the repository root (docker-compose.yml's exporter services).
FROM python:3.11.11-slim-bookworm

# No bytecode, unbuffered logs; the exporter runs as an unprivileged user.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY diagnose ./diagnose
RUN pip install . && useradd --system --no-create-home doctor

USER doctor
EXPOSE 9400
# Inside the container it must listen on all interfaces to be scraped; docker-compose.yml publishes the
# port on the host's 127.0.0.1 only.
ENTRYPOINT ["rerank-doctor", "export"]
CMD ["--url", "http://127.0.0.1:8000", "--bind", "0.0.0.0", "--port", "9400"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9400/metrics', timeout=4)"]
