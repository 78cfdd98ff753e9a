"""The JSON answers a chat model must give, as pydantic models, and how a bad one is told.

Each model is what one port method accepts: anything else (not JSON, another shape, a
category we do not offer) fails validation, gets one repair attempt in openai_chat.py,
and is then left to the offline rules.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from tasks.ai.offline import CATEGORIES, SUMMARY_LIMIT

# A model's miscount of "at most 280 characters" is let through up to this; a longer
# summary is refused (and repaired) rather than cut where no sentence ends.
SUMMARY_HARD_LIMIT = 2 * SUMMARY_LIMIT
REASON_LIMIT = 200
# Some servers wrap the object in a Markdown code fence even in JSON mode.
_FENCE = re.compile(r"^\s*```(?:json)?\s*(?P<body>.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    # The object the prompt asks for, repeated when an answer has to be repaired.
    shape: ClassVar[str]


class CategoryAnswer(Answer):
    shape = '{"category": one of ' + ", ".join(f'"{name}"' for name in CATEGORIES) + " or null}"
    category: str | None  # None: the messages do not tell

    @field_validator("category")
    @classmethod
    def _offered_name(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        # "newsletter" or " Work " is the offered name, spelled as we spell it.
        by_lower = {name.lower(): name for name in CATEGORIES}
        name = by_lower.get(value.strip().lower())
        if name is None:
            raise ValueError(f"must be one of {', '.join(CATEGORIES)}, or null")
        return name


class CleanAnswer(Answer):
    shape = '{"done": true or false, "reason": "one short sentence"}'
    done: bool
    # Shown to the user beside the thread: it must say something, and briefly.
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_LIMIT)
    ]


class SummaryAnswer(Answer):
    shape = '{"summary": "the summary, or an empty string"}'
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=SUMMARY_HARD_LIMIT)]


AnyAnswer = TypeVar("AnyAnswer", bound=Answer)


def parse(kind: type[AnyAnswer], reply: str | None) -> AnyAnswer:
    """The reply as `kind`; ValidationError when it is not that JSON object."""
    text = reply or ""
    fenced = _FENCE.match(text)
    return kind.model_validate_json(fenced.group("body") if fenced else text)


def problems(error: ValidationError) -> str:
    """What is wrong, for the model to repair: field and message, never the input."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'the answer'}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)
    )


def problem_kinds(error: ValidationError) -> str:
    """Only pydantic's error types ("json_invalid", "missing"): safe to log."""
    return ", ".join(sorted({item["type"] for item in error.errors(include_url=False)}))
