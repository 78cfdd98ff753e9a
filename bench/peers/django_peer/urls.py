from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("qstash/webhook/", include("django_qstash.urls"))]
