"""The AI port answered by a chat model behind an OpenAI-compatible API.

One `POST {AI_BASE_URL}/chat/completions` per question, in JSON mode, so this works with
OpenAI, Azure OpenAI's v1 API, OpenRouter, and local servers (Ollama, vLLM, llama.cpp's
server). The answer must be the JSON object of tasks/ai/answers.py; a bad one is sent
back once with what was wrong, and if the second is bad too the offline rules decide.

Failures of the server become the job vocabulary (bridge/outcome.py): rate limits,
timeouts, unreachable or failing servers are RetryLater (with the server's Retry-After
when it gives one); a refused key is a PermanentError naming AI_API_KEY. The SDK's own
retries are off, so the job's retry policy is the only one. Nothing here logs a prompt,
a message or the key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import ValidationError

from bridge.outcome import PermanentError, RetryLater
from tasks.ai import answers, prompts
from tasks.ai.answers import AnyAnswer, CategoryAnswer, CleanAnswer, SummaryAnswer
from tasks.ai.offline import OfflineAI
from tasks.ai.port import AI, CleanDecision
from tasks.ai.settings import AISettings
from tasks.mail.port import MailMessage
from tasks.retry_after import retry_after

log = logging.getLogger("jobbridge.ai")

# The wait when a server is busy, slow or down but says nothing about when to come back.
RETRY_SECONDS = 30.0
# What the SDK sends as the key when AI_API_KEY is unset (local servers ignore it). Never
# None: the SDK would then read OPENAI_API_KEY and send that key to any server.
NO_KEY = "unused"
# Statuses that say "later", as the SDK's own retry logic reads them.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


class OpenAIChatAI:
    """The AI port over `client.chat.completions.create`.

    `fallback` answers when the model gives no valid answer after one repair, and for
    input with nothing to ask about (no messages). `http_client` is for tests (an
    httpx.Client that respx can intercept); by default the SDK makes its own.
    """

    def __init__(
        self,
        settings: AISettings,
        *,
        fallback: AI | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        if settings.ai_model is None:
            raise ValueError("OpenAIChatAI needs AI_MODEL; without it default_ai() is offline")
        self._model = settings.ai_model
        self._timeout = settings.ai_timeout_seconds
        self._budget = settings.ai_max_input_chars
        self._base_url = settings.base_url
        self._fallback = fallback or OfflineAI()
        key = settings.ai_api_key
        self._client = openai.OpenAI(
            api_key=key.get_secret_value() if key is not None else NO_KEY,
            base_url=self._base_url,
            max_retries=0,
            timeout=self._timeout,
            # The SDK takes an httpx.Client as well as its own client type (openai>=3
            # annotates only the latter).
            http_client=cast(Any, http_client),
        )

    def categorize_sender(self, sender: str, messages: Sequence[MailMessage]) -> str | None:
        if not messages:
            return self._fallback.categorize_sender(sender, messages)
        prompt = prompts.categorize(sender, messages, self._budget)
        answer = self._ask("categorize", prompt, CategoryAnswer)
        if answer is None:
            return self._fallback.categorize_sender(sender, messages)
        return answer.category

    def decide_clean(
        self, thread: Sequence[MailMessage], instructions: str | None
    ) -> CleanDecision:
        if not thread:
            return self._fallback.decide_clean(thread, instructions)
        prompt = prompts.clean(thread, instructions, self._budget)
        answer = self._ask("clean", prompt, CleanAnswer)
        if answer is None:
            return self._fallback.decide_clean(thread, instructions)
        return CleanDecision(answer.done, answer.reason)

    def summarize(self, message: MailMessage) -> str:
        answer = self._ask("summarize", prompts.summarize(message, self._budget), SummaryAnswer)
        if answer is None:
            return self._fallback.summarize(message)
        return answer.summary

    # one question: at most two calls ---------------------------------------------
    def _ask(
        self, task: str, prompt: list[ChatCompletionMessageParam], kind: type[AnyAnswer]
    ) -> AnyAnswer | None:
        """The model's valid answer, after one repair if need be; None if there is none."""
        reply = self._complete(prompt)
        try:
            return answers.parse(kind, reply)
        except ValidationError as error:
            # The model's own words go back to it, no longer than the mail it was given.
            echoed = prompts.cut(reply or "", self._budget)
            prompt = prompts.repair(prompt, echoed, kind, answers.problems(error))
        reply = self._complete(prompt)
        try:
            return answers.parse(kind, reply)
        except ValidationError as error:
            log.warning(
                "AI %s: model %s gave no valid answer after a repair (%s); "
                "the offline rules decide",
                task,
                self._model,
                answers.problem_kinds(error),
            )
            return None

    def _complete(self, messages: list[ChatCompletionMessageParam]) -> str | None:
        """The text of the model's reply; failures of the server as RetryLater or
        PermanentError (raised `from None`: the SDK's errors carry the server's words)."""
        try:
            completion = self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                response_format={"type": "json_object"},
                timeout=self._timeout,
            )
        except openai.APITimeoutError:
            raise RetryLater(
                f"the AI server at {self._base_url} did not answer within "
                f"AI_TIMEOUT_SECONDS ({self._timeout:g} s)",
                RETRY_SECONDS,
            ) from None
        except openai.APIConnectionError:
            raise RetryLater(
                f"cannot reach the AI server at {self._base_url}", RETRY_SECONDS
            ) from None
        except openai.APIStatusError as error:
            raise self._refused(error.status_code, error.response.headers) from None
        choices = completion.choices or []
        return choices[0].message.content if choices else None

    def _refused(self, status: int, headers: Mapping[str, str]) -> Exception:
        if status in _TRANSIENT_STATUSES or status >= 500:
            wait = retry_after(headers)
            return RetryLater(
                f"the AI server at {self._base_url} answered HTTP {status}",
                RETRY_SECONDS if wait is None else wait,
            )
        if status in (401, 403):
            return PermanentError(
                f"the AI server at {self._base_url} refused AI_API_KEY (HTTP {status}): "
                "check the key, and that it may use AI_MODEL"
            )
        return PermanentError(
            f"the AI server at {self._base_url} refused the request (HTTP {status}): check "
            f"AI_MODEL ({self._model}) and AI_BASE_URL; the server must offer "
            "/chat/completions with JSON mode (response_format json_object)"
        )
