"""Photos: content sniffing and the photos table (the files live in Settings.photos_dir).

Plain functions over a connection: the caller holds the transaction for writes.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ovr_common.sqlite import where

from .store import row_dict

MAX_CAPTION = 500
_SELECT = "SELECT p.*, e.id AS event_id FROM photos p LEFT JOIN events e ON e.pk = p.event_pk"


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


def doc(row: sqlite3.Row) -> dict[str, Any]:
    d = row_dict(row)
    return {k: d[k] for k in ("id", "filename", "original_filename", "content_type", "size", "sha256", "caption",
                              "system_id", "event_id", "author", "created_at")}


def get(conn: sqlite3.Connection, photo_id: int) -> sqlite3.Row | None:
    """The photo with its event's id (event_id)."""
    return conn.execute(_SELECT + " WHERE p.id = ?", (photo_id,)).fetchone()


def find(conn: sqlite3.Connection, event_id: str | None, system_id: str | None, limit: int) -> list[sqlite3.Row]:
    """Newest first, filtered by the event's id and the system."""
    clause, args = where({"e.id": event_id, "p.system_id": system_id})
    return conn.execute(f"{_SELECT}{clause} ORDER BY p.created_at DESC, p.id DESC LIMIT ?", [*args, limit]).fetchall()


def for_report(conn: sqlite3.Connection, event_pk: int, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """The event's photos and those without an event taken in [start_ms, end_ms], oldest first."""
    return [dict(p) for p in conn.execute(
        "SELECT id, filename, system_id, caption, created_at FROM photos WHERE event_pk = ?"
        " OR (event_pk IS NULL AND created_at BETWEEN ? AND ?) ORDER BY created_at", (event_pk, start_ms, end_ms)).fetchall()]


def add(conn: sqlite3.Connection, *, event_pk: int | None, system_id: str | None, filename: str, original_filename: str,
        content_type: str, size: int, sha256: str, caption: str, author: str, created_at: int) -> int:
    return conn.execute(
        "INSERT INTO photos (event_pk, system_id, filename, original_filename, content_type, size, sha256, caption,"
        " author, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (event_pk, system_id, filename, original_filename, content_type, size, sha256, caption, author,
         created_at)).lastrowid


def set_caption(conn: sqlite3.Connection, photo_id: int, caption: str) -> None:
    conn.execute("UPDATE photos SET caption = ? WHERE id = ?", (caption, photo_id))


def delete(conn: sqlite3.Connection, photo_id: int) -> None:
    conn.execute("DELETE FROM photos WHERE id = ?", (photo_id,))
