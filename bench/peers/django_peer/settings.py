"""The least Django that serves django-qstash's webhook, configured from the environment.

What is left out makes the peer faster, never slower: no database, no sessions or auth,
only the two middlewares every project keeps, and no `django_qstash.results` (so its
"already succeeded?" check is a no-op and nothing is written per delivery).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

PUBLIC_URL = os.environ["WEBHOOK_URL"]  # the origin QStash calls (and signs)

SECRET_KEY = "bench-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = [urlsplit(PUBLIC_URL).hostname or ""]
INSTALLED_APPS = ["django_qstash"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "django_peer.urls"
WSGI_APPLICATION = "django_peer.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

QSTASH_TOKEN = "bench-unused"  # the client is made at import; nothing is published
QSTASH_CURRENT_SIGNING_KEY = os.environ["QSTASH_CURRENT_SIGNING_KEY"]
QSTASH_NEXT_SIGNING_KEY = os.environ["QSTASH_NEXT_SIGNING_KEY"]
DJANGO_QSTASH_DOMAIN = PUBLIC_URL
DJANGO_QSTASH_WEBHOOK_PATH = "/qstash/webhook/"
