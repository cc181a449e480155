"""The metadata of an ONNX file, read straight from its protobuf encoding.

``cropsal crop`` needs a model's pre-processing (input size rules, in its ``cropsal.*`` metadata)
before the first image can be decoded, but not its ONNX Runtime session until the first batch
is ready. Reading the few metadata strings here, without ONNX Runtime or the ``onnx`` package,
lets the session load in the background while the first images decode.

An ONNX file is one ``ModelProto`` message; its ``metadata_props`` (field 14) are
``StringStringEntryProto`` messages with ``key`` (field 1) and ``value`` (field 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

METADATA_PROPS = 14  # ModelProto.metadata_props
ENTRY_KEY, ENTRY_VALUE = 1, 2  # StringStringEntryProto.key, .value
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5  # protobuf wire types


def read_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` of the ONNX model in ``path`` as a dict; ``ValueError`` when the file
    is not a well-formed protobuf message (``OSError`` when it cannot be read)."""
    props: dict[str, str] = {}
    for field, value in fields(memoryview(path.read_bytes())):
        if field == METADATA_PROPS and isinstance(value, memoryview):
            entry = dict(fields(value))
            key, text = entry.get(ENTRY_KEY, b""), entry.get(ENTRY_VALUE, b"")
            if isinstance(key, memoryview) and isinstance(text, memoryview):
                props[key.tobytes().decode("utf-8", "replace")] = text.tobytes().decode(
                    "utf-8", "replace"
                )
    return props


def fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """``(field number, value)`` of each field of one protobuf message: varints as ``int``,
    everything else as the raw bytes (a view into ``buf``, so skipping a large graph is free)."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = varint(buf, pos)
            yield field, value
            continue
        if wire == LENGTH_DELIMITED:
            size, pos = varint(buf, pos)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos}: not an ONNX model")
        if pos + size > len(buf):
            raise ValueError(f"protobuf field {field} runs past the end of the file")
        yield field, buf[pos : pos + size]
        pos += size


def varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """The base-128 varint at ``buf[pos:]`` and the position after it."""
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("malformed protobuf varint: not an ONNX model")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos
