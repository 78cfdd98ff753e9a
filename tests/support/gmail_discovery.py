"""The Gmail discovery document google-api-python-client ships, as the Gmail double's
judge of every request: the HTTP method and path must be a method's, under the root the
client was pointed at plus the document's servicePath; each query parameter one the
method or the document declares, given once unless repeated, of its type, enum and
pattern; required parameters present; a request body only where the method takes one,
JSON matching its schema (no undeclared fields, right types and enums, `byte` fields
base64). The double's own answers are held to the response schemas the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import googleapiclient

DOCUMENT = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "gmail.v1.json"
_INTEGER_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Method:
    id: str  # "gmail.users.messages.get"
    http_method: str
    path: re.Pattern[str]
    literal: int  # characters outside {params}: the most specific path wins
    description: dict[str, Any]

    @property
    def short_id(self) -> str:
        """`messages.get` for `gmail.users.messages.get`."""
        return self.id.removeprefix("gmail.users.")


class Discovery:
    def __init__(self, document: Path = DOCUMENT) -> None:
        self.document: dict[str, Any] = json.loads(document.read_text(encoding="utf-8"))
        self.schemas: dict[str, Any] = self.document["schemas"]
        self.standard: dict[str, Any] = self.document["parameters"]
        root = urljoin(self.document["rootUrl"], self.document["servicePath"])
        self.prefix = urlsplit(root).path  # "/": the servicePath under the root
        self.methods: list[Method] = []
        self._collect(self.document)

    def _collect(self, resource: dict[str, Any]) -> None:
        for description in resource.get("methods", {}).values():
            for template in {description["flatPath"], description["path"]}:
                pattern, literal = _path_pattern(template)
                self.methods.append(
                    Method(
                        description["id"], description["httpMethod"], pattern, literal, description
                    )
                )
        for child in resource.get("resources", {}).values():
            self._collect(child)

    def method(self, method_id: str) -> Method:
        """The method by its id, `gmail.users.messages.get` or `messages.get`."""
        for method in self.methods:
            if method_id in (method.id, method.short_id):
                return method
        raise KeyError(f"the Gmail discovery document has no method {method_id!r}")

    def route(self, verb: str, path: str) -> tuple[Method, dict[str, str]] | None:
        """The method this request calls, and its path parameters; None if none."""
        if not path.startswith(self.prefix):
            return None
        relative = path[len(self.prefix) :]
        matches: list[tuple[Method, dict[str, str]]] = []
        for method in self.methods:
            found = method.path.fullmatch(relative)
            if found is not None and method.http_method == verb:
                matches.append((method, {k: unquote(v) for k, v in found.groupdict().items()}))
        if not matches:
            return None
        return max(matches, key=lambda match: match[0].literal)

    def check_parameters(
        self, method: Method, path_params: dict[str, str], query: list[tuple[str, str]]
    ) -> list[str]:
        problems: list[str] = []
        declared: dict[str, Any] = method.description.get("parameters", {})
        seen: dict[str, int] = {}
        for name, value in query:
            seen[name] = seen.get(name, 0) + 1
            spec = declared.get(name) or self.standard.get(name)
            if spec is None or spec.get("location") == "path":
                problems.append(f"{method.id}: undeclared query parameter {name!r}")
                continue
            if seen[name] == 2 and not spec.get("repeated"):
                problems.append(f"{method.id}: {name!r} given more than once")
            problems += _check_parameter(method.id, name, value, spec)
        for name, value in path_params.items():
            problems += _check_parameter(method.id, name, value, declared.get(name, {}))
        for name, spec in declared.items():
            if spec.get("required") and name not in seen and name not in path_params:
                problems.append(f"{method.id}: required parameter {name!r} missing")
        return problems

    def check_body(self, method: Method, body: bytes, content_type: str) -> tuple[Any, list[str]]:
        """The request body as JSON, and what is wrong with it."""
        request = method.description.get("request")
        if not body:
            return None, []
        if request is None:
            return None, [f"{method.id}: takes no request body, got {len(body)} bytes"]
        if not content_type.lower().startswith("application/json"):
            return None, [f"{method.id}: request body is {content_type!r}, not JSON"]
        try:
            value = json.loads(body)
        except ValueError:
            return None, [f"{method.id}: request body is not JSON"]
        return value, self.check_value(value, request, f"{method.id} request")

    def check_response(self, method: Method, value: Any) -> list[str]:
        response = method.description.get("response")
        if response is None:
            return [] if value is None else [f"{method.id}: answers no body, the double sent one"]
        return self.check_value(value, response, f"{method.id} response")

    def check_value(self, value: Any, schema: dict[str, Any], where: str) -> list[str]:
        if "$ref" in schema:
            return self.check_value(value, self.schemas[schema["$ref"]], where)
        kind = schema.get("type")
        if kind == "object":
            if not isinstance(value, dict):
                return [f"{where}: {type(value).__name__}, not an object"]
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            problems: list[str] = []
            for key, item in value.items():
                spec = properties.get(key, extra)
                if spec is None:
                    problems.append(f"{where}: undeclared field {key!r}")
                else:
                    problems += self.check_value(item, spec, f"{where}.{key}")
            return problems
        if kind == "array":
            if not isinstance(value, list):
                return [f"{where}: {type(value).__name__}, not an array"]
            problems = []
            for index, item in enumerate(value):
                problems += self.check_value(item, schema["items"], f"{where}[{index}]")
            return problems
        return _check_scalar(value, schema, where)


def _path_pattern(template: str) -> tuple[re.Pattern[str], int]:
    pattern, literal, position = "", 0, 0
    for found in re.finditer(r"\{(\+?)([^}]+)\}", template):
        text = template[position : found.start()]
        pattern += re.escape(text)
        literal += len(text)
        pattern += f"(?P<{found[2]}>{'.+' if found[1] else '[^/]+'})"
        position = found.end()
    pattern += re.escape(template[position:])
    return re.compile(pattern), literal + len(template) - position


def _check_parameter(method_id: str, name: str, value: str, spec: dict[str, Any]) -> list[str]:
    where = f"{method_id}: parameter {name}={value!r}"
    kind = spec.get("type", "string")
    if kind == "boolean" and value not in ("true", "false"):
        return [f"{where} is not a boolean"]
    if kind == "integer":
        return _check_integer(value, spec, where)
    if "enum" in spec and value not in spec["enum"]:
        return [f"{where} is not one of {spec['enum']}"]
    if "pattern" in spec and not re.fullmatch(spec["pattern"], value):
        return [f"{where} does not match {spec['pattern']}"]
    return []


def _check_integer(value: Any, spec: dict[str, Any], where: str) -> list[str]:
    if isinstance(value, bool):
        return [f"{where} is not an integer"]
    try:
        number = int(value)
    except (TypeError, ValueError):
        return [f"{where} is not an integer"]
    low, high = _INTEGER_RANGES.get(spec.get("format", ""), (None, None))
    low = int(spec["minimum"]) if "minimum" in spec else low
    high = int(spec["maximum"]) if "maximum" in spec else high
    if (low is not None and number < low) or (high is not None and number > high):
        return [f"{where} is out of range"]
    return []


def _check_scalar(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    kind, form = schema.get("type"), schema.get("format", "")
    if kind == "string" and form in _INTEGER_RANGES:
        # 64-bit integers travel as JSON strings (a number is accepted as well).
        return _check_integer(value, schema, where)
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: {type(value).__name__}, not a string"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} is not one of {schema['enum']}"]
        if form == "byte" and not _is_base64(value):
            return [f"{where}: not base64"]
        return []
    if kind == "integer":
        return _check_integer(value, schema, where)
    if kind == "boolean" and not isinstance(value, bool):
        return [f"{where}: {type(value).__name__}, not a boolean"]
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return [f"{where}: {type(value).__name__}, not a number"]
    return []


def _is_base64(value: str) -> bool:
    """Base64 in either alphabet, padded or not, as Google reads `format: byte`."""
    text = value.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
