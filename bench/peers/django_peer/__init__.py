"""django-qstash's webhook view with one no-op task: a peer of bench/receivers.py.

Served as `gunicorn --workers 2 django_peer.wsgi:application` (sync workers, gunicorn's
default) from bench/.peers/venv, with DJANGO_SETTINGS_MODULE=django_peer.settings.
"""
