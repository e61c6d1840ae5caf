"""Can calsvc use the database it is given? Asked once at start-up, answered in one line.

asyncpg's exceptions tell the mistakes apart (no such database, nothing listening, a refused
login, an unknown host), so the answer can say what to change. A message names the host,
port, database and user of the URL, never its password.
"""

from __future__ import annotations

import asyncio
import re
import socket
from urllib.parse import parse_qs, unquote

import asyncpg

from calsvc.config import ConfigError

SETTING = "database.url (CALSVC_DATABASE_URL)"


def check_database(url: str, timeout: float) -> None:
    """Connect to `url` once and close; raise ConfigError (one line naming the setting and what to
    change) when that fails for any reason."""
    where, database = describe(url)
    try:
        asyncio.run(_connect(url, timeout))
    except asyncpg.InvalidCatalogNameError:
        raise ConfigError(
            f'{SETTING}: there is no database "{database}" at {where}; create it '
            f'(CREATE DATABASE "{database}") or name one that exists'
        ) from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise ConfigError(
            f"{SETTING}: {where} refused the login ({exc.args[0]}); correct the user or password in the URL"
        ) from None
    except asyncpg.PostgresError as exc:
        raise ConfigError(f"{SETTING}: {where} refused the connection: {exc.args[0]}") from None
    except TimeoutError:
        raise ConfigError(
            f"{SETTING}: no answer from {where} within {timeout:g} s (database.connect_timeout); "
            "check the host and port, and that PostgreSQL runs there"
        ) from None
    except socket.gaierror as exc:
        raise ConfigError(f"{SETTING}: the host of {where} is unknown ({exc.strerror}); correct the host") from None
    except (ConnectionRefusedError, FileNotFoundError):
        raise ConfigError(
            f"{SETTING}: nothing is listening at {where}; start PostgreSQL there, correct the host and port, "
            "or leave the setting empty for the embedded PostgreSQL"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{SETTING}: cannot connect to {where}: {redact(exc.strerror or str(exc), url)}") from None
    except ValueError as exc:
        raise ConfigError(
            f"{SETTING} is not a usable PostgreSQL URL ({redact(str(exc), url)}); "
            "write it as postgresql://user:password@host:port/name"
        ) from None


async def _connect(url: str, timeout: float) -> None:
    conn = await asyncpg.connect(url, timeout=timeout)
    await conn.close(timeout=timeout)


def describe(url: str) -> tuple[str, str]:
    """(`user@host:port`, the database's name) of a PostgreSQL URL, for messages: without the
    password, and without failing on a URL that is not well formed."""
    match = re.match(r"[^:/]+://([^/?#]*)(?:/([^?#]*))?(?:\?([^#]*))?", url)
    netloc, path, query = match.groups(default="") if match else ("", "", "")
    options = parse_qs(query)
    credentials, _, hosts = netloc.rpartition("@")
    user = unquote(credentials.partition(":")[0]) or options.get("user", [""])[0]
    hosts = unquote(hosts) or options.get("host", ["the default socket"])[0]
    database = unquote(path) or options.get("dbname", [user or "postgres"])[0]
    return (f"{user}@{hosts}" if user else hosts), database


def redact(text: str, url: str) -> str:
    """The first line of `text`, with the URL's password, if any, replaced by ***."""
    match = re.match(r"[^:/]+://([^/?#@]*)@", url)
    password = match[1].partition(":")[2] if match else ""
    line = text.splitlines()[0] if text else text
    for form in {password, unquote(password)} - {""}:
        line = line.replace(form, "***")
    return line
