"""Compression of write bodies, with a bound on what decompression may produce.

vmagent sends Prometheus remote write as raw snappy, or VictoriaMetrics' protocol as zstd
(Content-Encoding: zstd) once Caddy answered its handshake; Influx writes may be gzip. On a host
these are Debian's python3-snappy and python3-zstandard; cramjam serves where they are missing
(the controller's test environment).
"""

from __future__ import annotations

import io
import zlib


class TooLarge(ValueError):
    pass


class BadEncoding(ValueError):
    pass


try:  # Debian: python3-snappy, python3-zstandard
    import snappy as _snappy
    import zstandard as _zstd

    def _snappy_decompress(data: bytes) -> bytes:
        return _snappy.uncompress(data)

    def snappy_compress(data: bytes) -> bytes:
        return _snappy.compress(data)

    def _zstd_decompress(data: bytes, limit: int) -> bytes:
        # A stream, never the frame's own size claim: at most limit + 1 bytes are ever produced.
        reader = _zstd.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        chunks, total = [], 0
        while total <= limit:
            chunk = reader.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)

    def zstd_compress(data: bytes) -> bytes:
        return _zstd.ZstdCompressor().compress(data)
except ImportError:  # pragma: no cover - the controller's venv
    import cramjam as _cramjam

    def _snappy_decompress(data: bytes) -> bytes:
        return bytes(_cramjam.snappy.decompress_raw(data))

    def snappy_compress(data: bytes) -> bytes:
        return bytes(_cramjam.snappy.compress_raw(data))

    def _zstd_decompress(data: bytes, limit: int) -> bytes:
        return bytes(_cramjam.zstd.decompress(data))[: limit + 1]

    def zstd_compress(data: bytes) -> bytes:
        return bytes(_cramjam.zstd.compress(data))


def _snappy_length(data: bytes) -> int:
    """The uncompressed length a raw snappy block announces (its leading varint)."""
    result = shift = 0
    for _i, byte in enumerate(data[:10]):
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result
        shift += 7
    raise BadEncoding("the body is not snappy: no length header")


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """`data` decoded per Content-Encoding; TooLarge past `limit` bytes, BadEncoding if broken."""
    encoding = encoding.strip().lower()
    try:
        if encoding == "snappy":
            if _snappy_length(data) > limit:
                raise TooLarge(f"decompressed, the body is {_snappy_length(data)} bytes")
            out = _snappy_decompress(data)
        elif encoding == "zstd":
            out = _zstd_decompress(data, limit)
        elif encoding in ("gzip", "deflate"):
            d = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
            out = d.decompress(data, limit + 1)
        elif encoding in ("", "identity"):
            out = data
        else:
            raise BadEncoding(f"Content-Encoding {encoding!r} is not one of snappy, zstd, gzip")
    except (TooLarge, BadEncoding):
        raise
    except Exception as exc:  # every codec has its own error type
        raise BadEncoding(f"the body is not valid {encoding}: {type(exc).__name__}") from None
    if len(out) > limit:
        raise TooLarge(f"decompressed, the body is over {limit} bytes")
    return out


def compress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "snappy":
        return snappy_compress(data)
    if encoding == "zstd":
        return zstd_compress(data)
    return data
