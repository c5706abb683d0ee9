"""An API operation declared where its handler is: what it takes, what it answers, who may call.

`@operation(...)` on a handler records an `Operation` (read by service/api/openapi.py to build the
document) and does the decoding it declares: the JSON body into `body` (after the `guard`, if
any, has checked the caller's role), the query string into `query`, passed to the handler after
the request in that order. So the document and the
validation come from the same declaration and cannot drift apart.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service.web.body import convert, decode_query, json_body
from service.web.middleware import Handler

log = logging.getLogger(__name__)

ATTR = "api_operation"
Fn = Callable[..., Awaitable[web.StreamResponse]]
# Checks a caller's right to the operation before its body's shape is (a 403 before a 422): gets
# the request and the body as plain JSON values.
Guard = Callable[[web.Request, Any], None]


@dataclass(frozen=True, slots=True)
class Operation:
    """What the OpenAPI document says of one route."""

    summary: str
    tag: str
    body: type[Any] | None = None  # a JSON body, decoded and passed to the handler
    query: type[Any] | None = None  # query parameters, decoded and passed after the body
    form: type[Any] | None = None  # a multipart form the handler streams itself (documented)
    answer: Any = None  # the type of the JSON answer; None with `media` for other content
    status: int = 200
    errors: tuple[int, ...] = ()  # beyond those implied (401, 400/413/415/422 for a body…)
    media: tuple[str, ...] = ("application/json",)
    public: bool = False  # no login needed
    description: str = ""

    def error_statuses(self, has_path_params: bool) -> list[int]:
        """Every 4xx this operation can answer."""
        implied = set(self.errors)
        if not self.public:
            implied.add(401)
        if self.body is not None or self.form is not None:
            implied |= {400, 413, 415, 422}
        if self.query is not None:
            implied.add(422)
        if has_path_params:
            implied.add(404)
        return sorted(implied)


def operation(summary: str, *, tag: str, body: type[Any] | None = None,
              query: type[Any] | None = None, form: type[Any] | None = None, answer: Any = None,
              status: int = 200, errors: tuple[int, ...] = (),
              media: tuple[str, ...] = ("application/json",),
              public: bool = False, guard: Guard | None = None) -> Callable[[Fn], Handler]:
    """Declare a handler as an API operation (see the module docstring); `guard` runs on the
    plain body before it is checked against `body` (403 implied)."""
    if guard is not None:
        errors = (*errors, 403)

    def wrap(fn: Fn) -> Handler:
        meta = Operation(summary, tag, body, query, form, answer, status, errors, media, public,
                         inspect.cleandoc(fn.__doc__ or ""))

        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            args: list[Any] = []
            if meta.body is not None:
                plain = await json_body(request)
                if guard is not None:
                    guard(request, plain)
                args.append(convert(plain, meta.body))
            if meta.query is not None:
                args.append(decode_query(request, meta.query))
            return await fn(request, *args)

        setattr(handler, ATTR, meta)
        return handler

    return wrap


def operation_of(handler: Any) -> Operation | None:
    """The declaration on a route's handler, if any."""
    meta = getattr(handler, ATTR, None)
    return meta if isinstance(meta, Operation) else None
