"""Protobuf wire-format pieces the agent writes by hand: the log parser encodes events and the
transport frames batches straight from serialized records, without building messages."""

from __future__ import annotations

__all__ = ["VARINT1", "varint"]

VARINT1 = tuple(bytes((i,)) for i in range(128))  # the one-byte varints, ready made


def varint(n: int) -> bytes:
    """A non-negative int as a protobuf varint."""
    if n < 0x80:
        return VARINT1[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    if 1 << 56 <= n < 1 << 63:  # times in ns (2^56 ns is 1972)
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80,
                      n >> 28 & 0x7F | 0x80, n >> 35 & 0x7F | 0x80, n >> 42 & 0x7F | 0x80,
                      n >> 49 & 0x7F | 0x80, n >> 56))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
