"""The OpenAPI document the server publishes at ``/schema/openapi.json``.

The Messages handlers read the raw body and decode it with :mod:`trimkit.wire`
(lenient, like the real API), so Litestar cannot infer their request bodies. The
operation classes here describe them loosely: the fields every request needs and
"anything else goes". Only the JSON document is served: no documentation page
that would load scripts from elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from ..wire import ErrorResponse

_STRING = Schema(type=OpenAPIType.STRING)
_OBJECT = Schema(type=OpenAPIType.OBJECT)
_MESSAGE = Schema(
    type=OpenAPIType.OBJECT,
    required=["role", "content"],
    properties={
        "role": Schema(type=OpenAPIType.STRING, enum=["user", "assistant"]),
        "content": Schema(one_of=[_STRING, Schema(type=OpenAPIType.ARRAY, items=_OBJECT)]),
    },
)
_REQUEST_FIELDS = {
    "model": _STRING,
    "max_tokens": Schema(type=OpenAPIType.INTEGER, minimum=1),
    "messages": Schema(type=OpenAPIType.ARRAY, items=_MESSAGE, min_items=1),
    "system": Schema(one_of=[_STRING, Schema(type=OpenAPIType.ARRAY, items=_OBJECT)]),
    "tools": Schema(type=OpenAPIType.ARRAY, items=_OBJECT),
    "stop_sequences": Schema(type=OpenAPIType.ARRAY, items=_STRING),
    "stream": Schema(type=OpenAPIType.BOOLEAN),
    "temperature": Schema(type=OpenAPIType.NUMBER, minimum=0, maximum=1),
}


def _json_body(required: list[str], description: str) -> RequestBody:
    schema = Schema(type=OpenAPIType.OBJECT, required=required, properties=_REQUEST_FIELDS)
    return RequestBody(required=True, description=description, content={"application/json": OpenAPIMediaType(schema=schema)})


@dataclass
class MessagesOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(
            ["model", "max_tokens", "messages"],
            "An Anthropic Messages request; unknown fields and block types are accepted.",
        )


@dataclass
class CountTokensOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(["model", "messages"], "A Messages request without max_tokens.")


ERROR_RESPONSES = {
    status: ResponseSpec(data_container=ErrorResponse, description=description, generate_examples=False)
    for status, description in (
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (529, "overloaded_error: the queue for the model is full"),
    )
}


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(title="trimkit", version=version, path="/schema", render_plugins=[JsonRenderPlugin()])
