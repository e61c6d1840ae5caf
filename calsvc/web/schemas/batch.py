"""Types of POST /api/events/batch: many events at once, and one result per item."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from calsvc.web.schemas.common import Input
from calsvc.web.schemas.events import Event, Strategy
from calsvc.web.schemas.problems import ItemProblem


class BatchIn(Input, kw_only=True):
    # Items are checked one by one (so `atomic: false` can answer each), hence `Any` here.
    events: Annotated[
        list[Any],
        Meta(
            min_length=1,
            max_length=500,
            description="1-500 events",
            extra_json_schema={"items": {"$ref": "#/components/schemas/EventIn"}},
        ),
    ]
    atomic: bool = True
    on_conflict: Strategy | None = None


class BatchCreated(Struct, kw_only=True):
    items: list[Event]


class BatchResult(Struct, kw_only=True):
    index: int
    status: int
    event: Event | msgspec.UnsetType = msgspec.UNSET
    error: ItemProblem | msgspec.UnsetType = msgspec.UNSET


class BatchResults(Struct, kw_only=True):
    results: list[BatchResult]
