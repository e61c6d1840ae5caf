"""Types of /api/auth and /api/users: accounts, logins, tokens, and people to share with."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from calsvc.web.schemas.common import Cursor, Input, Limit, UtcTime

Username = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=32,
        pattern=r"^[A-Za-z0-9_.-]+$(?!\n)",
        description="3-32 characters of A-Z a-z 0-9 _ . -; unique ignoring case",
    ),
]
Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$(?!\n)",
        description="an email address (name@example.com); unique ignoring case",
    ),
]
Password = Annotated[str, Meta(min_length=8, max_length=128, description="8-128 characters")]
FullName = Annotated[str, Meta(max_length=200)]
LoginName = Annotated[str, Meta(min_length=1, max_length=254)]
LoginPassword = Annotated[str, Meta(min_length=1, max_length=1024)]
TokenText = Annotated[str, Meta(min_length=1, max_length=4096)]


class RegisterRequest(Input, kw_only=True):
    username: Username
    email: Email
    password: Password
    full_name: FullName | None = None


class LoginRequest(Input, kw_only=True):
    """Log in with `username` or `email` (either matches both) and `password`."""

    username: LoginName | None = None
    email: LoginName | None = None
    password: LoginPassword


class LoginForm(Input, kw_only=True):
    """The OAuth2 password grant, form-encoded."""

    grant_type: Literal["password"] | None = None
    username: LoginName
    password: LoginPassword
    scope: Annotated[str, Meta(max_length=1024)] = ""
    client_id: Annotated[str, Meta(max_length=1024)] | None = None
    client_secret: Annotated[str, Meta(max_length=1024)] | None = None


class RefreshRequest(Input, kw_only=True):
    refresh_token: TokenText


class LogoutRequest(Input, kw_only=True):
    refresh_token: TokenText | None = None


class PasswordChange(Input, kw_only=True):
    current_password: LoginPassword
    new_password: Password


class CloseAccount(Input, kw_only=True):
    password: LoginPassword


class TokenPair(Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: Annotated[int, Meta(description="seconds until the access token expires")]


class User(Struct, kw_only=True):
    id: int
    username: str
    email: str
    full_name: str | None
    created_at: UtcTime


# -- users ------------------------------------------------------------------------------


class UserSummary(Struct, kw_only=True):
    id: int
    username: str
    full_name: str | None


class UserPage(Struct, kw_only=True):
    items: list[UserSummary]
    next_cursor: str | None


class UsersQuery(Input, kw_only=True):
    q: Annotated[str, Meta(max_length=254, description="a username prefix, or a whole email; any case")] = ""
    limit: Limit = 50
    cursor: Cursor | None = None
