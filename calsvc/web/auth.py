"""Handlers of /api/auth: register, login (JSON or OAuth2 form), refresh, logout, me, change the
password, close the account."""

from __future__ import annotations

from aiohttp import web

from calsvc import errors, models
from calsvc.services.auth import TokenPair
from calsvc.web import codec, keys, schemas
from calsvc.web.endpoints import access_claims


def render_user(user: models.User) -> schemas.User:
    return schemas.User(
        id=user.id, username=user.username, email=user.email, full_name=user.full_name, created_at=user.created_at
    )


def render_pair(pair: TokenPair) -> schemas.TokenPair:
    return schemas.TokenPair(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type="bearer",
        expires_in=pair.expires_in,
    )


async def register(request: web.Request, body: schemas.RegisterRequest) -> web.Response:
    user = await request.app[keys.AUTH].register(body.username, body.email, body.password, body.full_name)
    return codec.respond(request, render_user(user), status=201)


async def login(request: web.Request, body: schemas.LoginRequest | schemas.LoginForm) -> web.Response:
    name = body.username if body.username is not None else getattr(body, "email", None)
    if name is None:
        raise errors.Validation.at(("body", "username"), "give username or email", "missing")
    pair = await request.app[keys.AUTH].login(name, body.password)
    return codec.respond(request, render_pair(pair))


async def refresh(request: web.Request, body: schemas.RefreshRequest) -> web.Response:
    pair = await request.app[keys.AUTH].refresh(body.refresh_token)
    return codec.respond(request, render_pair(pair))


async def logout(request: web.Request, user: models.User, body: schemas.LogoutRequest) -> web.Response:
    await request.app[keys.AUTH].logout(access_claims(request), body.refresh_token)
    return web.Response(status=204)


async def me(request: web.Request, user: models.User) -> web.Response:
    return codec.respond(request, render_user(user))


async def change_password(request: web.Request, user: models.User, body: schemas.PasswordChange) -> web.Response:
    pair = await request.app[keys.AUTH].change_password(user.id, body.current_password, body.new_password)
    return codec.respond(request, render_pair(pair))


async def close_account(request: web.Request, user: models.User, body: schemas.CloseAccount) -> web.Response:
    await request.app[keys.ACCOUNTS].close(user.id, body.password)
    return web.Response(status=204)
