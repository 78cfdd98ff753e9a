"""One publisher per provider, all behind the `Publisher` protocol."""

from __future__ import annotations

from bridge.publishers.base import Message, Publisher
from config import Provider, Settings


def make_publisher(provider: Provider, settings: Settings) -> Publisher:
    if provider is Provider.INNGEST:
        from bridge.publishers.inngest import InngestPublisher

        return InngestPublisher(settings)
    if provider is Provider.QSTASH:
        from bridge.publishers.qstash import QStashPublisher

        return QStashPublisher(settings)
    if provider is Provider.CELERY:
        from bridge.publishers.celery import CeleryPublisher

        return CeleryPublisher(settings)
    from bridge.publishers.http import HttpPublisher

    return HttpPublisher(settings)


__all__ = ["Message", "Publisher", "make_publisher"]
