"""Photos: type checked by content (magic bytes, not the file name), size-limited, stored in the data dir."""

from __future__ import annotations

import contextlib
import hashlib
import os

from flask import Blueprint, request, send_file
from ovr_common.atomic import write_atomic

from .. import photos
from ..events import clean_text
from ..photos import MAX_CAPTION, sniff
from ..store import now_ms
from .common import ApiError, actor, body, ctx, int_arg, ok, require, system_id_arg

bp = Blueprint("media", __name__)

@bp.get("/api/photos")
@require("read")
def list_photos():
    event_id = request.args["event_id"][:64] if request.args.get("event_id") else None
    sid = system_id_arg(request.args["system_id"], must_exist=False) if request.args.get("system_id") else None
    rows = photos.find(ctx().store.conn(), event_id, sid, int_arg("limit", 50))
    return ok({"photos": [photos.doc(r) for r in rows]})


@bp.post("/api/photos")
@require("operator")
def upload():
    s = ctx().settings
    if request.content_length is not None and request.content_length > s.photo_max_bytes + 64 * 1024:
        raise ApiError(413, f"photo larger than {s.photo_max_bytes // (1024 * 1024)} MiB")
    f = request.files.get("photo")
    if f is None:
        raise ApiError(400, "multipart form field 'photo' (the image file) is required")
    data = f.read(s.photo_max_bytes + 1)
    if len(data) > s.photo_max_bytes:
        raise ApiError(413, f"photo larger than {s.photo_max_bytes // (1024 * 1024)} MiB")
    if not data:
        raise ApiError(400, "the photo is empty")
    kind = sniff(data[:16])
    if kind is None:
        raise ApiError(415, "not a JPEG, PNG, GIF, WebP or HEIC image")
    caption = clean_text(request.form.get("caption"), "caption", MAX_CAPTION)
    sid = request.form.get("system_id") or None
    if sid is not None:
        sid = system_id_arg(sid)
    event_pk, event_id = ctx().events.attach_to(request.form.get("event_id") or None, sid)
    digest = hashlib.sha256(data).hexdigest()
    ts = now_ms()
    filename = f"{ts}_{digest[:16]}.{kind[1]}"
    path = s.photos_dir / filename
    s.photos_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, 0o640)
    original = os.path.basename((f.filename or "photo").replace("\\", "/"))[:200] or "photo"
    try:
        with ctx().store.tx() as c:
            pid = photos.add(c, event_pk=event_pk, system_id=sid, filename=filename, original_filename=original,
                             content_type=kind[0], size=len(data), sha256=digest, caption=caption, author=actor(),
                             created_at=ts)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    ctx().store.audit(actor(), "photo_upload", event_id=event_id, system_id=sid,
                      detail={"photo_id": pid, "size": len(data), "type": kind[0]})
    return ok({"photo": photos.doc(photos.get(ctx().store.conn(), pid))}, 201)


def _get(photo_id: int):
    row = photos.get(ctx().store.conn(), photo_id)
    if row is None:
        raise ApiError(404, f"no photo {photo_id}")
    return row


@bp.get("/api/photos/<int:photo_id>")
@require("read")
def get_photo(photo_id: int):
    return ok({"photo": photos.doc(_get(photo_id))})


@bp.get("/api/photos/<int:photo_id>/file")
@require("read")
def photo_file(photo_id: int):
    row = _get(photo_id)
    path = ctx().settings.photos_dir / row["filename"]
    if not path.is_file():
        raise ApiError(404, f"the file of photo {photo_id} is missing")
    resp = send_file(path, mimetype=row["content_type"], max_age=3600)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.patch("/api/photos/<int:photo_id>")
@require("operator")
def caption(photo_id: int):
    row = _get(photo_id)
    text = clean_text(body().get("caption"), "caption", MAX_CAPTION)
    with ctx().store.tx() as c:
        photos.set_caption(c, photo_id, text)
    ctx().store.audit(actor(), "photo_caption", event_id=row["event_id"], system_id=row["system_id"],
                      detail={"photo_id": photo_id}, before={"caption": row["caption"]}, after={"caption": text})
    return ok({"photo": photos.doc(_get(photo_id))})


@bp.delete("/api/photos/<int:photo_id>")
@require("operator")
def delete(photo_id: int):
    row = _get(photo_id)
    with ctx().store.tx() as c:
        photos.delete(c, photo_id)
    with contextlib.suppress(FileNotFoundError):
        (ctx().settings.photos_dir / row["filename"]).unlink()
    ctx().store.audit(actor(), "photo_delete", event_id=row["event_id"], system_id=row["system_id"],
                      detail={"photo_id": photo_id, "filename": row["filename"]})
    return ok({"deleted": photo_id})
