"""Log in (session cookie for the dashboard) and out; HTTP Basic works on every endpoint too."""

from __future__ import annotations

from flask import Blueprint, session

from .common import ApiError, body, check_password, client_address, ctx, current_user, ok

bp = Blueprint("auth", __name__)


@bp.post("/api/auth/login")
def login():
    doc = body()
    name, password = doc.get("username"), doc.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name or len(name) > 64 or len(password) > 1024:
        raise ApiError(400, "username and password are required strings")
    user = check_password(name, password)
    if user is None:
        ctx().store.audit(name[:64], "login", result="refused", error="bad credentials", detail={"address": client_address()})
        raise ApiError(401, "wrong username or password")
    session.clear()
    session["user"] = user.name
    session.permanent = True
    ctx().store.audit(user.name, "login")
    return ok({"user": user.name, "role": user.role})


@bp.post("/api/auth/logout")
def logout():
    session.clear()
    return ok({"logged_out": True})


@bp.get("/api/auth/me")
def me():
    user = current_user()
    if user is None:
        raise ApiError(401, "not logged in")
    return ok({"user": user.name, "role": user.role})
