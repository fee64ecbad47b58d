# One image for every role: `digits worker`, `digits ingest`, `digits up`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app
COPY pyproject.toml README.md ./
COPY digits ./digits
COPY worker ./worker
COPY ingest ./ingest
COPY review ./review
COPY model_store ./model_store
COPY layouts ./layouts
RUN pip install . && useradd --create-home --uid 1000 digits && mkdir -p /data && chown digits /data

USER digits
WORKDIR /data
# Prometheus metrics of a worker (DIGITS_METRICS_PORT).
EXPOSE 9808
ENTRYPOINT ["digits"]
CMD ["worker"]
