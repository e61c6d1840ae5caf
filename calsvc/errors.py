"""Typed errors. Services raise these; one middleware renders each as problem+json (RFC 9457).

Each class's docstring is its `title`; `slug` makes its stable `type` (`/problems/<slug>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Problem(Exception):
    """Internal server error"""

    status = 500
    slug = "internal"
    closes_connection = False  # the answer closes the connection (what is left of the request is not coming)

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = extra

    @property
    def title(self) -> str:
        return (type(self).__doc__ or "Error").strip().splitlines()[0]

    @property
    def type(self) -> str:
        return f"/problems/{self.slug}"

    def body(self) -> dict[str, Any]:
        body = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        body["errors"] = self.errors
        body.update(self.extra)
        return body


class Malformed(Problem):
    """Malformed request"""

    status = 400
    slug = "malformed"


class Unauthorized(Problem):
    """Authentication required"""

    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {})["WWW-Authenticate"] = 'Bearer realm="calsvc"'
        super().__init__(detail, **kw)


class Forbidden(Problem):
    """Forbidden"""

    status = 403
    slug = "forbidden"


class NotFound(Problem):
    """Not found"""

    status = 404
    slug = "not-found"


class MethodNotAllowed(Problem):
    """Method not allowed"""

    status = 405
    slug = "method-not-allowed"


class NotAcceptable(Problem):
    """Not acceptable"""

    status = 406
    slug = "not-acceptable"


class Duplicate(Problem):
    """Already exists"""

    status = 409
    slug = "duplicate"


class Conflict(Problem):
    """Conflict"""

    status = 409
    slug = "conflict"


class SchedulingConflict(Problem):
    """Scheduling conflict"""

    status = 409
    slug = "scheduling-conflict"


class EditConflict(Problem):
    """Edit conflict"""

    status = 409
    slug = "edit-conflict"


class PreconditionFailed(Problem):
    """Precondition failed"""

    status = 412
    slug = "precondition-failed"


class RequestTimeout(Problem):
    """Request timeout"""

    status = 408
    slug = "request-timeout"
    closes_connection = True


class PayloadTooLarge(Problem):
    """Request body too large"""

    status = 413
    slug = "payload-too-large"


class UnsupportedMediaType(Problem):
    """Unsupported media type"""

    status = 415
    slug = "unsupported-media-type"


class Validation(Problem):
    """Validation failed"""

    status = 422
    slug = "validation"

    @classmethod
    def at(cls, loc: Sequence[str | int], msg: str, kind: str = "value_error") -> Validation:
        """One invalid value at `loc` (for example `("body", "start_time")`)."""
        return cls(msg, errors=[{"loc": list(loc), "msg": msg, "type": kind}])


class BatchItem(Problem):
    """A batch item failed"""

    slug = "batch-item"
    field = "events"  # where the items are in the body
    inner: Problem | None = None  # the item's own problem

    @classmethod
    def of(cls, index: int, inner: Problem) -> BatchItem:
        """The problem of item `index`: its status and members, `index`, and every error's
        `loc` moved under `["body", field, index]` (a body-wide error gets one) unless it is
        there already (an item validated where it stands)."""
        item_loc: list[str | int] = ["body", cls.field, index]
        moved = []
        for error in inner.errors:
            loc = list(error.get("loc", ()))
            if loc[:1] == ["body"] and loc[:3] != item_loc:
                loc = item_loc + loc[1:]
            moved.append({**error, "loc": loc})
        if not moved:
            moved = [{"loc": item_loc, "msg": inner.detail, "type": inner.slug}]
        name = f"{cls.field}[{index}]"
        detail = inner.detail if inner.detail.startswith(name) else f"{name}: {inner.detail}"
        problem = cls(detail, errors=moved, headers=inner.headers, **{**inner.extra, "index": index})
        problem.status = inner.status
        problem.inner = inner
        return problem


class TransactionOperation(BatchItem):
    """A transaction's operation failed; nothing was written"""

    slug = "transaction-operation"
    field = "operations"


class RateLimited(Problem):
    """Too many requests"""

    status = 429
    slug = "rate-limited"


class Internal(Problem):
    """Internal server error"""


class Unavailable(Problem):
    """Service unavailable"""

    status = 503
    slug = "unavailable"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {}).setdefault("Retry-After", "1")
        super().__init__(detail or "The database is unavailable; try again shortly.", **kw)


# Generic statuses that aiohttp itself raises (unknown route, method, size) map to these.
BY_STATUS: dict[int, type[Problem]] = {
    cls.status: cls
    for cls in (
        Malformed,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        Conflict,
        RequestTimeout,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        Validation,
        RateLimited,
        Internal,
        Unavailable,
    )
}
