"""The AI port answered by a chat model over an OpenAI-compatible API.

The server is a double (respx) that answers `POST {base}/chat/completions` in the shape
the API documents; each test checks what was asked as well as what came back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from bridge.outcome import PermanentError, RetryLater
from tasks.ai import CleanDecision, OfflineAI
from tasks.ai.openai_chat import RETRY_SECONDS, OpenAIChatAI
from tasks.ai.prompts import CUT_MARK
from tasks.ai.settings import AISettings
from tasks.mail.port import MailMessage

BASE = "http://ai.test/v1"
MODEL = "test-model"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECRET_BODY = "The door code is 4711, see you at dinner on Saturday."


def mail(**fields: Any) -> MailMessage:
    values: dict[str, Any] = {
        "id": "m1",
        "thread_id": "t1",
        "sender": "Shop <orders@shop.example>",
        "to": "me@example.test",
        "subject": "Your parcel has shipped",
        "body": "Your order 1234 has been shipped and arrives on Friday.",
        "folder": "INBOX",
        "read": False,
        "date": NOW - timedelta(days=30),
        "headers": {"auto-submitted": "auto-generated"},
    }
    values.update(fields)
    return MailMessage(**values)


def settings(**fields: Any) -> AISettings:
    values: dict[str, Any] = {
        "ai_base_url": BASE,
        "ai_api_key": None,
        "ai_model": MODEL,
        "ai_timeout_seconds": 5,
        "ai_max_input_chars": 6000,
    }
    values.update(fields)
    return AISettings(_env_file=None, **values)


def completion(content: str) -> httpx.Response:
    """A chat completion as the API documents it, with `content` as the answer."""
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_780_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        },
    )


def sent(route: respx.Route, call: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[call].request.content)
    return body


def user_text(route: respx.Route, call: int = 0) -> str:
    return str(sent(route, call)["messages"][1]["content"])


@pytest.fixture
def chat() -> Iterator[respx.Route]:
    with respx.mock(base_url=BASE, assert_all_called=False) as server:
        yield server.post("/chat/completions")


@pytest.fixture
def make_ai() -> Iterator[Callable[..., OpenAIChatAI]]:
    clients: list[httpx.Client] = []

    def make(**fields: Any) -> OpenAIChatAI:
        clients.append(httpx.Client())  # a client respx intercepts
        fallback = OfflineAI(now=lambda: NOW)
        return OpenAIChatAI(settings(**fields), fallback=fallback, http_client=clients[-1])

    yield make
    for client in clients:
        client.close()


# answers ------------------------------------------------------------------------
def test_categorize_asks_the_model_in_json_mode_and_returns_its_category(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"category": "Notification"}'))

    category = make_ai().categorize_sender("orders@shop.example", [mail()])

    assert category == "Notification"
    assert chat.call_count == 1
    assert sent(chat)["model"] == MODEL
    assert sent(chat)["response_format"] == {"type": "json_object"}
    assert "orders@shop.example" in user_text(chat)
    assert "Your parcel has shipped" in user_text(chat)


def test_the_categorize_prompt_offers_the_offline_categories(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"category": "Work"}'))

    make_ai().categorize_sender("orders@shop.example", [mail()])

    system = sent(chat)["messages"][0]["content"]
    for name in ("Newsletter", "Receipt", "Marketing", "Notification", "Personal", "Work"):
        assert name in system


def test_a_null_category_means_the_model_cannot_tell(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"category": null}'))

    assert make_ai().categorize_sender("orders@shop.example", [mail()]) is None


def test_decide_clean_returns_the_models_decision_and_reason(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"done": true, "reason": "A delivered parcel"}'))

    decision = make_ai().decide_clean([mail()], "archive shipping notices")

    assert decision == CleanDecision(True, "A delivered parcel")
    assert chat.call_count == 1
    assert "archive shipping notices" in user_text(chat)


def test_summarize_returns_the_models_summary(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"summary": "Order 1234 arrives on Friday."}'))

    summary = make_ai().summarize(mail())

    assert summary == "Order 1234 arrives on Friday."
    assert chat.call_count == 1
    assert "Your order 1234 has been shipped" in user_text(chat)


def test_no_messages_to_judge_asks_the_model_nothing(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"category": "Work"}'))

    assert make_ai().categorize_sender("orders@shop.example", []) is None
    assert chat.call_count == 0


# the budget ---------------------------------------------------------------------
def test_a_long_body_is_cut_to_the_budget(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"summary": "Long."}'))

    make_ai(ai_max_input_chars=800).summarize(mail(body="word " * 2000))

    assert len(user_text(chat)) <= 800
    assert user_text(chat).endswith(CUT_MARK)


def test_messages_after_the_one_cut_are_left_out(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"category": "Notification"}'))
    messages = [mail(id=f"m{n}", subject=f"Subject {n}", body="word " * 100) for n in (1, 2, 3)]

    make_ai(ai_max_input_chars=800).categorize_sender("orders@shop.example", messages)

    text = user_text(chat)
    assert "Subject 1" in text
    assert "Subject 2" in text  # cut short
    assert "Subject 3" not in text
    assert len(text) <= 800 + len("Sender: \n\n")


def test_long_instructions_take_at_most_half_the_budget(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"done": false, "reason": "Kept"}'))

    make_ai(ai_max_input_chars=1000).decide_clean([mail()], "keep " * 1000)

    assert user_text(chat).count("keep") <= 500 // len("keep ")
    assert "Your parcel has shipped" in user_text(chat)


# repair and fallback ------------------------------------------------------------
@pytest.mark.parametrize(
    "bad_reply",
    ["Notification, I think", '{"category": "Shopping"}', '["Notification"]'],
    ids=["not JSON", "a category not offered", "not an object"],
)
def test_an_invalid_answer_is_repaired_on_a_second_call(
    bad_reply: str, chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(side_effect=[completion(bad_reply), completion('{"category": "Notification"}')])

    category = make_ai().categorize_sender("orders@shop.example", [mail()])

    assert category == "Notification"
    assert chat.call_count == 2
    first, repair = sent(chat, 0)["messages"], sent(chat, 1)["messages"]
    assert repair[: len(first)] == first
    assert repair[len(first)] == {"role": "assistant", "content": bad_reply}
    assert "not valid" in repair[-1]["content"]
    assert '{"category"' in repair[-1]["content"]


QUESTIONS: dict[str, Callable[[Any], object]] = {
    "categorize": lambda ai: ai.categorize_sender("orders@shop.example", [mail()]),
    "clean": lambda ai: ai.decide_clean([mail()], None),
    "summarize": lambda ai: ai.summarize(mail()),
}


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_invalid_twice_the_offline_rules_decide(
    question: str, chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(side_effect=[completion("no idea"), completion('{"answer": 42}')])

    answer = QUESTIONS[question](make_ai())

    assert answer == QUESTIONS[question](OfflineAI(now=lambda: NOW))
    assert chat.call_count == 2


def test_the_fallback_warning_shows_no_mail_and_no_answer(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI], caplog: pytest.LogCaptureFixture
) -> None:
    chat.mock(side_effect=[completion("dinner 4711"), completion("dinner 4711 again")])

    with caplog.at_level(logging.WARNING, logger="jobbridge.ai"):
        make_ai().summarize(mail(subject="Saturday", body=SECRET_BODY))

    assert "offline rules decide" in caplog.text
    for secret in ("4711", "dinner", "Saturday"):
        assert secret not in caplog.text


# server failures ----------------------------------------------------------------
def test_a_rate_limit_is_retried_after_the_servers_retry_after(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=httpx.Response(429, headers={"Retry-After": "17"}, json={}))

    with pytest.raises(RetryLater) as raised:
        make_ai().summarize(mail())

    assert raised.value.retry_after == 17
    assert chat.call_count == 1  # the SDK does not retry on its own


def test_a_rate_limit_without_retry_after_waits_the_default(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=httpx.Response(429, json={}))

    with pytest.raises(RetryLater) as raised:
        make_ai().summarize(mail())

    assert raised.value.retry_after == RETRY_SECONDS


def test_a_timeout_is_retried_later_naming_ai_timeout_seconds(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(side_effect=httpx.ReadTimeout("no answer"))

    with pytest.raises(RetryLater, match="AI_TIMEOUT_SECONDS") as raised:
        make_ai().summarize(mail())

    assert raised.value.retry_after == RETRY_SECONDS
    assert chat.call_count == 1


def test_an_unreachable_server_is_retried_later(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(side_effect=httpx.ConnectError("connection refused"))

    with pytest.raises(RetryLater, match="cannot reach"):
        make_ai().summarize(mail())


def test_a_server_error_is_retried_later(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=httpx.Response(503, headers={"Retry-After": "5"}, json={}))

    with pytest.raises(RetryLater) as raised:
        make_ai().summarize(mail())

    assert raised.value.retry_after == 5
    assert chat.call_count == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_a_permanent_error_naming_ai_api_key(
    status: int, chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=httpx.Response(status, json={"error": {"message": "bad key"}}))

    with pytest.raises(PermanentError, match="AI_API_KEY") as raised:
        make_ai(ai_api_key="sk-wrong-key").summarize(mail())

    assert "sk-wrong-key" not in str(raised.value)


def test_an_unknown_model_is_a_permanent_error_naming_ai_model(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=httpx.Response(404, json={"error": {"message": "no such model"}}))

    with pytest.raises(PermanentError, match="AI_MODEL"):
        make_ai().summarize(mail())


# the key ------------------------------------------------------------------------
def test_ai_api_key_is_sent_as_a_bearer_token(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI]
) -> None:
    chat.mock(return_value=completion('{"summary": ""}'))

    make_ai(ai_api_key="sk-test").summarize(mail())

    assert chat.calls[0].request.headers["authorization"] == "Bearer sk-test"


def test_without_ai_api_key_openais_own_key_is_not_sent(
    chat: respx.Route, make_ai: Callable[..., OpenAIChatAI], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-meant-for-openai")
    chat.mock(return_value=completion('{"summary": ""}'))

    make_ai(ai_api_key=None).summarize(mail())

    assert "sk-meant-for-openai" not in chat.calls[0].request.headers.get("authorization", "")
