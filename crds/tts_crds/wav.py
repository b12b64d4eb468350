"""WAV sizes after streaming: a streamed WAV says 0xFFFFFFFF for its RIFF and data sizes (its
length was unknown when the header left); once every byte is in, the true sizes can be written.
Pure byte handling, for clients that save what they streamed (the MCP server; the web UI does the
same in JavaScript)."""

from __future__ import annotations

import struct

_UNKNOWN = 0xFFFFFFFF


def header(rate: int, data_bytes: int | None = None) -> bytes:
    """The 44-byte header of a 16-bit mono PCM WAV at ``rate``: with the true sizes for ``data_bytes`` of
    samples, or (None) the streaming sizes 0xFFFFFFFF of a WAV whose length is unknown when it leaves."""
    riff = _UNKNOWN if data_bytes is None else 36 + data_bytes
    data = _UNKNOWN if data_bytes is None else data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", riff, b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", data
    )


def data_offset(data: bytes) -> int | None:
    """Where the samples of a RIFF/WAVE file start (just after the ``data`` chunk's size), or None."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"data":
            return pos + 8
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None


def with_true_sizes(data: bytes) -> bytes:
    """``data`` with its RIFF and data sizes set to what it holds; anything but a WAV comes back as it is."""
    start = data_offset(data)
    if start is None or len(data) - 8 > _UNKNOWN:
        return data
    out = bytearray(data)
    struct.pack_into("<I", out, 4, len(data) - 8)
    struct.pack_into("<I", out, start - 4, len(data) - start)
    return bytes(out)
