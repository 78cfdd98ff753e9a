# jobbridge: one image for every process. The default command is the web server;
# docker-compose*.yml run the Celery worker, beat and Flower from the same image by
# overriding the command, so all four always run the same code.
#
#   docker build -t jobbridge:local .
#   docker run --env-file .env -p 8000:8000 jobbridge:local
#   docker run --env-file .env jobbridge:local celery -A tasks worker --loglevel=INFO

# Debian slim keeps the manylinux wheels working (psycopg[binary], uvloop, httptools);
# the tag names the Debian release so a rebuild does not silently change the OS under us.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric uid/gid, so volume ownership and Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app

# Install the project as a package (not an editable checkout): the wheel carries the
# Alembic migrations as package data, so `jobbridge db upgrade` works from any directory.
# Only what the package needs is copied: a stray .env or .venv can never reach the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY tasks ./tasks
COPY bridge ./bridge
RUN pip install . \
    && rm -rf /src

# DATA_DIR (a Settings field) holds what each process keeps on disk: beat's schedule,
# Flower's state, Maildir accounts. Owned by the app user so a named volume mounted
# here starts out writable (Docker copies the ownership into an empty volume).
ENV DATA_DIR=/data
RUN mkdir -p /data && chown app:app /data
WORKDIR /home/app

USER 10001:10001

EXPOSE 8000

# The web's own check: /healthz answers 200 only when the database and the broker are
# reachable (503 otherwise). Python, because the slim image has no curl or wget. The
# worker, beat and Flower services replace this check with their own in compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# uvicorn[standard] (httptools, uvloop) is a dependency: plain h11 stalls keep-alive POSTs.
# --http: uvicorn's httptools protocol with a bound on a request head's size and time
# (bridge/web/bounded_http.py), which uvicorn itself does not have.
# --proxy-headers trusts X-Forwarded-* only from FORWARDED_ALLOW_IPS (uvicorn's default:
# 127.0.0.1); set that variable when a proxy in front rewrites the scheme or client.
CMD ["uvicorn", "bridge.web:app", "--host", "0.0.0.0", "--port", "8000", "--http", "bridge.web.bounded_http:BoundedHttpTools", "--proxy-headers"]
