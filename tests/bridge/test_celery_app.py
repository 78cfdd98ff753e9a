"""The Celery app's defaults are the crash-safe ones docs/PROTOCOLS.md asks for
("3. Celery, kombu and Flower")."""

from __future__ import annotations

from pathlib import Path

from bridge.celery.config import celery_config
from config import load_settings
from tasks import CRONS, JOBS, app


def test_tasks_are_acked_late_and_requeued_when_their_worker_dies() -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_workers_send_task_events_only_when_a_monitor_asks_and_publishers_always() -> None:
    # Flower asks (tests/ops/test_flower_sees_tasks.py); the sent event is the publisher's.
    assert app.conf.worker_send_task_events is False
    assert app.conf.task_send_sent_event is True


def test_visibility_timeout_outlasts_the_eta_horizon_and_the_time_limit() -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:6379/0")
    options = celery_config(settings)["broker_transport_options"]
    limit = settings.celery_eta_horizon_seconds + settings.celery_hard_time_limit_seconds
    assert options["visibility_timeout"] > limit


def test_a_dead_workers_messages_are_looked_for_every_ten_seconds() -> None:
    options = celery_config(load_settings(redis_url="redis://127.0.0.1:6379/0"))
    transport = options["broker_transport_options"]
    assert (
        transport.get("unacked_restore_interval", 10) * transport["unacked_restore_throttle"] <= 10
    )


def test_redis_key_prefix_reaches_the_transport() -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:6379/0", redis_key_prefix="tenant-a:")
    assert celery_config(settings)["broker_transport_options"]["global_keyprefix"] == "tenant-a:"


def test_embedded_default_uses_folders_under_the_data_dir(tmp_path: Path) -> None:
    config = celery_config(load_settings(redis_url=None, data_dir=tmp_path))
    options = config["broker_transport_options"]
    assert config["broker_url"] == "filesystem://localhost//"
    assert (
        options["data_folder_in"]
        == options["data_folder_out"]
        == str(tmp_path / "broker" / "queue")
    )
    assert Path(options["control_folder"]).is_dir()


def test_every_job_is_a_celery_task_named_after_its_event() -> None:
    for event, spec in JOBS.items():
        assert app.tasks[event].name == spec.event == event


def test_every_cron_is_on_the_beat_schedule() -> None:
    assert set(app.conf.beat_schedule) == set(CRONS)
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] == f"cron.{name}"
        assert entry["task"] in app.tasks
