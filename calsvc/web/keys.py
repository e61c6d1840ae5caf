"""Typed application keys (aiohttp AppKey), shared by the app factory and the handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from calsvc.config import Settings
    from calsvc.db.pool import Database
    from calsvc.links import LinkSigner
    from calsvc.notify.hub import Hub
    from calsvc.ratelimit import MemoryLimiter, RedisLimiter
    from calsvc.services.accounts import AccountService
    from calsvc.services.auth import AuthService
    from calsvc.services.batch import BatchService
    from calsvc.services.events import EventService
    from calsvc.services.history import HistoryService
    from calsvc.services.idempotency import Idempotency
    from calsvc.services.notifications import Notifications
    from calsvc.services.sharing import SharingService
    from calsvc.services.transactions import TransactionService
    from calsvc.tokens import TokenCodec
    from calsvc.web.drain import Drain
    from calsvc.web.metrics import Metrics

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[Database] = web.AppKey("db")
AUTH: web.AppKey[AuthService] = web.AppKey("auth")
ACCOUNTS: web.AppKey[AccountService] = web.AppKey("accounts")
EVENTS: web.AppKey[EventService] = web.AppKey("events")
BATCH: web.AppKey[BatchService] = web.AppKey("batch")
SHARING: web.AppKey[SharingService] = web.AppKey("sharing")
HISTORY: web.AppKey[HistoryService] = web.AppKey("history")
TRANSACTIONS: web.AppKey[TransactionService] = web.AppKey("transactions")
IDEMPOTENCY: web.AppKey[Idempotency] = web.AppKey("idempotency")
TOKENS: web.AppKey[TokenCodec] = web.AppKey("tokens")
LINKS: web.AppKey[LinkSigner] = web.AppKey("links")
AUTH_LIMITER: web.AppKey[MemoryLimiter | RedisLimiter] = web.AppKey("auth_limiter")
USER_LIMITER: web.AppKey[MemoryLimiter | RedisLimiter] = web.AppKey("user_limiter")
NOTIFICATIONS: web.AppKey[Notifications] = web.AppKey("notifications")
HUB: web.AppKey[Hub] = web.AppKey("hub")
REDIS: web.AppKey[Any] = web.AppKey("redis")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
MIGRATIONS: web.AppKey[list[str]] = web.AppKey("migrations")
DRAIN: web.AppKey[Drain] = web.AppKey("drain")

# Per-request storage.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
MEDIA: web.RequestKey[str] = web.RequestKey("media", str)
RATELIMIT: web.RequestKey[Any] = web.RequestKey("ratelimit", object)
CLAIMS: web.RequestKey[Any] = web.RequestKey("claims", object)
