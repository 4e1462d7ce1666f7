"""Photos: type checked by content (magic bytes, not the file name), size-limited, stored in the data dir."""

from __future__ import annotations

import contextlib
import hashlib
import os

from flask import Blueprint, request, send_file
from ovr_common.atomic import write_atomic

from ..events import clean_text
from ..store import now_ms, row_dict
from .common import ApiError, actor, body, ctx, int_arg, ok, require, system_id_arg

bp = Blueprint("media", __name__)

MAX_CAPTION = 500


def sniff(head: bytes) -> tuple[str, str] | None:
    """(content type, extension) from the first bytes, or None when it is no image we accept."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
        return "image/heic", "heic"
    return None


def _photo_doc(row) -> dict:
    d = row_dict(row)
    return {k: d[k] for k in ("id", "filename", "original_filename", "content_type", "size", "sha256", "caption",
                              "system_id", "event_id", "author", "created_at")}


_SELECT = "SELECT p.*, e.id AS event_id FROM photos p LEFT JOIN events e ON e.pk = p.event_pk"


@bp.get("/api/photos")
@require("read")
def list_photos():
    sql, args = _SELECT + " WHERE 1=1", []
    if request.args.get("event_id"):
        sql += " AND e.id = ?"
        args.append(request.args["event_id"][:64])
    if request.args.get("system_id"):
        sql += " AND p.system_id = ?"
        args.append(system_id_arg(request.args["system_id"], must_exist=False))
    sql += " ORDER BY p.created_at DESC, p.id DESC LIMIT ?"
    args.append(int_arg("limit", 50))
    return ok({"photos": [_photo_doc(r) for r in ctx().store.all(sql, *args)]})


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
    event_pk = event_id = None
    if request.form.get("event_id"):
        from ..events import valid_uuid

        eid = valid_uuid(request.form["event_id"])
        row = ctx().events.get(eid)
        if row is None:
            raise ApiError(404, "no such event on this node")
        event_pk, event_id = row["pk"], row["id"]
    elif sid is not None:
        p = ctx().events.active_participation(sid)
        if p is not None:
            event_pk, event_id = p["event_pk"], p["event_id"]
    digest = hashlib.sha256(data).hexdigest()
    ts = now_ms()
    filename = f"{ts}_{digest[:16]}.{kind[1]}"
    path = s.photos_dir / filename
    s.photos_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, 0o640)
    original = os.path.basename((f.filename or "photo").replace("\\", "/"))[:200] or "photo"
    try:
        with ctx().store.tx() as c:
            pid = c.execute(
                "INSERT INTO photos (event_pk, system_id, filename, original_filename, content_type, size, sha256, caption,"
                " author, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (event_pk, sid, filename, original, kind[0], len(data), digest, caption, actor(), ts)).lastrowid
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    ctx().store.audit(actor(), "photo_upload", event_id=event_id, system_id=sid,
                      detail={"photo_id": pid, "size": len(data), "type": kind[0]})
    return ok({"photo": _photo_doc(ctx().store.one(_SELECT + " WHERE p.id = ?", pid))}, 201)


def _get(photo_id: int):
    row = ctx().store.one(_SELECT + " WHERE p.id = ?", photo_id)
    if row is None:
        raise ApiError(404, f"no photo {photo_id}")
    return row


@bp.get("/api/photos/<int:photo_id>")
@require("read")
def get_photo(photo_id: int):
    return ok({"photo": _photo_doc(_get(photo_id))})


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
        c.execute("UPDATE photos SET caption = ? WHERE id = ?", (text, photo_id))
    ctx().store.audit(actor(), "photo_caption", event_id=row["event_id"], system_id=row["system_id"],
                      detail={"photo_id": photo_id}, before={"caption": row["caption"]}, after={"caption": text})
    return ok({"photo": _photo_doc(_get(photo_id))})


@bp.delete("/api/photos/<int:photo_id>")
@require("operator")
def delete(photo_id: int):
    row = _get(photo_id)
    with ctx().store.tx() as c:
        c.execute("DELETE FROM photos WHERE id = ?", (photo_id,))
    with contextlib.suppress(FileNotFoundError):
        (ctx().settings.photos_dir / row["filename"]).unlink()
    ctx().store.audit(actor(), "photo_delete", event_id=row["event_id"], system_id=row["system_id"],
                      detail={"photo_id": photo_id, "filename": row["filename"]})
    return ok({"deleted": photo_id})
