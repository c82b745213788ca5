# bookingbot in a container. `docker compose up -d` with a .env beside compose.yaml runs a practice
# (see docs/operating.md). Dependencies come from requirements.lock, every file checked by its hash.

FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
# The wheel carries the example practice, the translation catalogs and the migrations (see setup.py).
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BOOKINGBOT_CONFIG=/config/practice.toml \
    BOOKINGBOT_DATA_DIR=/data \
    BOOKINGBOT_LISTEN=0.0.0.0:8080 \
    BOOKINGBOT_LOG_FORMAT=json
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=build /wheels/ /tmp/wheels/
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && useradd --system --user-group --uid 10001 --home-dir /data --no-create-home bookingbot \
    && mkdir -p /data /config && chown bookingbot:bookingbot /data

# The SQLite database, the embedded calendars, feed.key and the calendar credentials live here.
VOLUME ["/data"]
WORKDIR /data
USER bookingbot
# Web endpoints (webhook, /healthz, feeds); the embedded CalDAV server when exposed.
EXPOSE 8080 5232
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ['BOOKINGBOT_LISTEN'].rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
ENTRYPOINT ["bookingbot"]
CMD ["run"]
