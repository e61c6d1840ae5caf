"""Settings: built-in defaults, then `config.toml`, then `CALSVC_<SECTION>_<KEY>` variables.

Every key of every section can be overridden from the environment by its fixed name,
for example `CALSVC_DATABASE_URL` or `CALSVC_RATE_LIMIT_AUTH_PER_MINUTE`. Secrets are kept
in `Secret` values whose repr hides them, so a settings object can be logged safely.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to change."""


class Secret(str):
    """A string that never shows itself in repr() or str() of a containing object."""

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    env: str = "development"
    data_dir: str = ".calsvc"
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    max_bulk_body_bytes: int = 8 * 1024 * 1024
    redoc_script_url: str = ""  # empty: the copy calsvc serves itself (/redoc/static/redoc.standalone.js)
    shutdown_timeout: float = 5.0
    drain_seconds: float = 2.0  # after SIGTERM: /readyz 503, still serving (longer than a balancer takes to notice)
    sse_heartbeat: float = 15.0  # seconds between the event stream's heartbeat comments
    header_timeout: float = 10.0  # seconds a request's headers may take to arrive (then 408)
    body_timeout: float = 30.0  # seconds a body may go without a byte while it is read (then 408)


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: Secret = Secret("")
    pool_min_size: int = 2
    pool_max_size: int = 10
    connect_timeout: float = 2.0
    acquire_timeout: float = 2.0
    command_timeout: float = 5.0
    auto_migrate: bool = True
    listen_url: Secret = Secret("")  # the LISTEN connection's, when `url` is a pooler (PgBouncer); empty: url


@dataclasses.dataclass(frozen=True, slots=True)
class RedisSettings:
    url: Secret = Secret("")
    prefix: str = "calsvc"  # of the pub/sub channel and the keys (deployments sharing one Redis differ here)


@dataclasses.dataclass(frozen=True, slots=True)
class AuthSettings:
    secret: Secret = Secret("")
    algorithm: str = "HS256"
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    bcrypt_rounds: int = 12


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimitSettings:
    auth_per_minute: int = 20
    user_per_minute: int = 600


@dataclasses.dataclass(frozen=True, slots=True)
class CorsSettings:
    allow_origins: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    cors: CorsSettings = CorsSettings()

    @property
    def production(self) -> bool:
        return self.server.env == "production"

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some keys changed: `settings.replace(auth={"bcrypt_rounds": 4})`."""
        changed = {}
        for name, values in sections.items():
            coerced = _coerce_section(name, values, "argument")  # ConfigError for unknown names
            changed[name] = dataclasses.replace(getattr(self, name), **coerced)
        return dataclasses.replace(self, **changed)


_SECTION_TYPES = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "redis": RedisSettings,
    "auth": AuthSettings,
    "rate_limit": RateLimitSettings,
    "cors": CorsSettings,
}


def _coerce(section: str, key: str, field: dataclasses.Field, value: Any, origin: str) -> Any:
    kind = field.default.__class__
    where = f"{section}.{key} ({origin})"
    if kind is Secret:
        return Secret("" if value is None else str(value))
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if kind is tuple:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, (list, tuple)):
            return tuple(str(part) for part in value)
        raise ConfigError(f"{where}: expected a list or a comma-separated string")
    return str(value)


def _coerce_section(section: str, values: Mapping[str, Any], origin: str) -> dict[str, Any]:
    if section not in _SECTION_TYPES:
        raise ConfigError(f"unknown config section [{section}] ({origin})")
    fields = {f.name: f for f in dataclasses.fields(_SECTION_TYPES[section])}
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {section}.{key} ({origin})")
        out[key] = _coerce(section, key, fields[key], value, origin)
    return out


def env_name(section: str, key: str) -> str:
    return f"CALSVC_{section}_{key}".upper()


# The test suite's own variables; calsvc never reads them and never refuses them.
TEST_PREFIX = "CALSVC_TEST_"
# Read by calsvc besides CALSVC_<SECTION>_<KEY>.
OTHER_VARIABLES = ("CALSVC_CONFIG",)


def known_variables() -> list[str]:
    """Every CALSVC_ variable calsvc reads."""
    keys = [env_name(s, f.name) for s, kind in _SECTION_TYPES.items() for f in dataclasses.fields(kind)]
    return [*keys, *OTHER_VARIABLES]


def check_variables(environ: Mapping[str, str]) -> None:
    """Raise ConfigError naming every CALSVC_ variable calsvc does not read (a misspelt one would
    otherwise be ignored in silence), with the closest known name; CALSVC_TEST_* is left alone.
    Names are matched without regard to case, so `calsvc_server_port` is refused too."""
    known = known_variables()
    unknown = [
        name
        for name in sorted(environ)
        if name.upper().startswith("CALSVC_") and not name.upper().startswith(TEST_PREFIX) and name not in known
    ]
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
        described.append(f"{name} (did you mean {close[0]}?)" if close else name)
    several = len(unknown) > 1
    raise ConfigError(
        f"unknown variable{'s' if several else ''} {', '.join(described)}: rename or unset "
        f"{'them' if several else 'it'}; calsvc reads CALSVC_<SECTION>_<KEY> for each key of config.toml "
        f"and CALSVC_CONFIG, and leaves {TEST_PREFIX}* to the test suite"
    )


def load_settings(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read defaults, the TOML file and the environment, and check the result.

    `path` defaults to `$CALSVC_CONFIG`, else `./config.toml` when it exists; a missing
    file is not an error (the defaults apply). Raises ConfigError on an unusable value or an
    unknown CALSVC_ variable.
    """
    environ = os.environ if environ is None else environ
    check_variables(environ)
    if path is None:
        path = environ.get("CALSVC_CONFIG") or ("config.toml" if Path("config.toml").is_file() else None)
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    sections: dict[str, Any] = {}
    for section, section_type in _SECTION_TYPES.items():
        table = file_values.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] in {path} must be a table of keys")
        values = dict(_coerce_section(section, table, str(path)))
        for field in dataclasses.fields(section_type):
            name = env_name(section, field.name)
            if name in environ:
                values[field.name] = _coerce(section, field.name, field, environ[name], name)
        sections[section] = section_type(**values)
    for section in file_values:
        if section not in _SECTION_TYPES:
            raise ConfigError(f"unknown config section [{section}] in {path}")
    settings = Settings(**sections)
    validate(settings)
    return settings


# The schemes each URL setting takes, and how to say so.
_POSTGRES_URL = (("postgresql", "postgres"), "a PostgreSQL URL, postgresql://user:password@host:port/name")
_URL_KINDS = {
    ("database", "url"): _POSTGRES_URL,
    ("database", "listen_url"): _POSTGRES_URL,
    ("redis", "url"): (("redis", "rediss", "unix"), "a Redis URL, redis://host:port/db, rediss:// or unix://"),
}


def _check_url(section: str, key: str, url: str) -> None:
    """Only the scheme is named in the message: the rest of a URL may hold a password."""
    schemes, kind = _URL_KINDS[section, key]
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme and scheme[1].lower() in schemes:
        return
    got = f"not {scheme[1]}://" if scheme else "and this one has no scheme://"
    empty = "; or leave it empty for the embedded PostgreSQL" if (section, key) == ("database", "url") else ""
    raise ConfigError(f"{section}.{key} ({env_name(section, key)}) must be {kind}, {got}{empty}")


# An HMAC key as long as the hash output (RFC 7518 3.2).
_MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def validate(settings: Settings) -> None:
    s = settings
    if s.server.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError("server.log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if s.server.env not in {"development", "production"}:
        raise ConfigError("server.env (CALSVC_SERVER_ENV) must be 'development' or 'production'")
    if s.production and not s.auth.secret:
        raise ConfigError(
            "refusing to start: CALSVC_SERVER_ENV=production needs a signing secret; "
            "set CALSVC_AUTH_SECRET (at least 32 random characters)"
        )
    if s.auth.algorithm not in _MIN_SECRET_BYTES:
        raise ConfigError("auth.algorithm must be HS256, HS384 or HS512")
    need = _MIN_SECRET_BYTES[s.auth.algorithm]
    if s.auth.secret and len(s.auth.secret.encode()) < need:
        raise ConfigError(f"auth.secret (CALSVC_AUTH_SECRET) must be at least {need} bytes for {s.auth.algorithm}")
    if not 4 <= s.auth.bcrypt_rounds <= 31:
        raise ConfigError("auth.bcrypt_rounds (CALSVC_AUTH_BCRYPT_ROUNDS) must be between 4 and 31")
    if s.auth.access_token_minutes < 1 or s.auth.refresh_token_days < 1:
        raise ConfigError("auth token lifetimes must be positive")
    if s.server.workers < 1:
        raise ConfigError("server.workers must be at least 1")
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", s.redis.prefix):
        raise ConfigError("redis.prefix must be 1-64 of A-Z a-z 0-9 _ . : -")
    if not 0.1 <= s.server.sse_heartbeat <= 300:
        raise ConfigError("server.sse_heartbeat must be between 0.1 and 300 seconds")
    for key in ("header_timeout", "body_timeout"):
        if not 0.1 <= getattr(s.server, key) <= 3600:
            raise ConfigError(f"server.{key} must be between 0.1 and 3600 seconds")
    if not 0 <= s.server.drain_seconds <= 300:
        raise ConfigError("server.drain_seconds must be between 0 and 300 seconds")
    if not 0 <= s.server.port <= 65535:
        raise ConfigError("server.port must be between 0 and 65535")
    if s.rate_limit.auth_per_minute < 0 or s.rate_limit.user_per_minute < 0:
        raise ConfigError("rate limits must be 0 (off) or positive")
    for section, key in _URL_KINDS:
        url = getattr(getattr(s, section), key)
        if url:
            _check_url(section, key, url)
    if s.database.pool_min_size < 0 or s.database.pool_max_size < max(1, s.database.pool_min_size):
        raise ConfigError("database.pool_max_size must be at least 1 and at least pool_min_size")


def ensure_secret(settings: Settings) -> Settings:
    """In development without a configured secret, use one generated once and kept in the data
    folder. ConfigError when the data folder cannot be written."""
    if settings.auth.secret:
        return settings
    data_dir = Path(settings.server.data_dir)
    path = data_dir / "secret"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            secret = path.read_text().strip()
        except FileNotFoundError:
            secret = ""
        if len(secret) < 32:
            secret = secrets.token_urlsafe(48)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret + "\n")
    except OSError as exc:
        raise data_dir_error(exc) from None
    return dataclasses.replace(settings, auth=dataclasses.replace(settings.auth, secret=Secret(secret)))


def data_dir_error(exc: OSError) -> ConfigError:
    """The one-line error of a data folder calsvc cannot use."""
    return ConfigError(
        f"server.data_dir (CALSVC_SERVER_DATA_DIR): {exc.strerror or exc}: {exc.filename}; "
        "make it writable by this user or name another folder"
    )
