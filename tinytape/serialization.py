"""Checkpoint files in the safetensors format (Hugging Face), written with numpy + json only.

Layout of a file::

    8 bytes      N, the header length, unsigned 64-bit little-endian
    N bytes      UTF-8 JSON object, padded with spaces to a multiple of 8 bytes:
                 {"__metadata__": {str: str, ...},              (optional)
                  "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
                  ...}
    the rest     the byte buffer: every tensor little-endian, C order, at [begin, end) of it

The data_offsets of all tensors tile the buffer exactly (no holes, no overlaps) and the last one
ends at the end of the file.  Files are written atomically and read without executing anything
(no pickle); every malformed file raises :class:`CheckpointError`.

    from tinytape.serialization import save_file, load_file
    save_file({"w": w, "b": b}, "model.safetensors", metadata={"step": "100"})
    tensors, metadata = load_file("model.safetensors")
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Mapping
from typing import BinaryIO, NamedTuple, Union

import numpy as np

__all__ = ["CheckpointError", "MAX_HEADER_SIZE", "load_file", "load_metadata", "save_file"]

PathLike = Union[str, "os.PathLike[str]"]

#: Largest header accepted or written (the limit of the reference implementation).
MAX_HEADER_SIZE = 100_000_000

# safetensors dtype name -> little-endian numpy dtype, in the reference implementation's order of
# increasing alignment.  The writer lays tensors out by decreasing rank in this order, then by name,
# so that (the header being padded to 8 bytes) every tensor starts aligned to its item size.
_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in [
        ("BOOL", "?"), ("U8", "u1"), ("I8", "i1"), ("I16", "<i2"), ("U16", "<u2"),
        ("F16", "<f2"), ("I32", "<i4"), ("U32", "<u4"), ("F32", "<f4"), ("C64", "<c8"),
        ("F64", "<f8"), ("I64", "<i8"), ("U64", "<u8"),
    ]
}
_RANK = {name: rank for rank, name in enumerate(_DTYPES)}
_NAME_OF = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items()}
# Valid safetensors dtypes that numpy cannot represent: named as such in the error message.
_NO_NUMPY_EQUIVALENT = frozenset({
    "BF16", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
    "F4", "F6_E2M3", "F6_E3M2",
})
_ENTRY_KEYS = ("dtype", "shape", "data_offsets")
_METADATA_KEY = "__metadata__"
_WRITE_CHUNK = 64 << 20


class CheckpointError(ValueError):
    """A checkpoint file is malformed: truncated, corrupted or not in the safetensors format."""


class _Entry(NamedTuple):
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class _DuplicateKeyError(ValueError):
    pass


# ----------------------------------------------------------------------------------- writing


def save_file(
    tensors: Mapping[str, np.ndarray],
    path: PathLike,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (name -> numpy array) and string ``metadata`` to ``path``, atomically.

    Non-contiguous and big-endian arrays are written as little-endian C-order copies.  The file is
    written to a temporary file in the same directory, synced, then renamed onto ``path``: if the
    save fails or the process dies, a previous file at ``path`` is left intact.  Raises TypeError
    or ValueError (naming the culprit) for bad names, arrays or metadata, before touching the disk.
    """
    path = os.fsdecode(os.fspath(path))
    entries, arrays = _plan(tensors)
    header = _build_header(entries, _check_metadata_argument(metadata))
    _atomic_write(path, header, entries, arrays)


def _plan(tensors: Mapping[str, np.ndarray]) -> tuple[list[_Entry], list[np.ndarray]]:
    """Validate the tensors and lay them out: entries and arrays in buffer order."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"save_file: tensors must be a mapping of str to numpy.ndarray, "
                        f"got {type(tensors).__name__}")
    items = []
    for name, array in tensors.items():
        _check_name(name)
        items.append((name, _dtype_name(name, array), array))
    items.sort(key=lambda item: (-_RANK[item[1]], item[0]))
    entries, arrays, offset = [], [], 0
    for name, dtype, array in items:
        nbytes = array.size * _DTYPES[dtype].itemsize
        entries.append(_Entry(name, dtype, tuple(int(d) for d in array.shape),
                              offset, offset + nbytes))
        arrays.append(array)
        offset += nbytes
    return entries, arrays


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"save_file: tensor names must be str, got {type(name).__name__} "
                        f"{_clip(repr(name))}")
    if not name:
        raise ValueError("save_file: tensor names must be non-empty, got ''")
    if name == _METADATA_KEY:
        raise ValueError(f"save_file: {_METADATA_KEY!r} is reserved for the metadata and cannot "
                         f"name a tensor")
    _check_utf8(name, "tensor name")


def _dtype_name(name: str, array: object) -> str:
    if isinstance(array, np.ma.MaskedArray):
        raise TypeError(f"save_file: tensor {_clip(repr(name))} is a masked array; its mask "
                        f"cannot be stored (pass array.filled(...) or the plain data)")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"save_file: tensor {_clip(repr(name))} must be a numpy.ndarray, got "
                        f"{type(array).__name__} (convert it with numpy.asarray)")
    dtype = array.dtype
    found = _NAME_OF.get((dtype.kind, dtype.itemsize)) if dtype.kind in "biufc" else None
    if found is None:
        supported = ", ".join(str(dt.newbyteorder("=")) for dt in _DTYPES.values())
        raise TypeError(f"save_file: tensor {_clip(repr(name))} has dtype {dtype}, which has no "
                        f"safetensors equivalent (supported: {supported})")
    return found


def _check_metadata_argument(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"save_file: metadata must be a mapping of str to str or None, got "
                        f"{type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"save_file: metadata keys must be str, got {type(key).__name__} "
                            f"{_clip(repr(key))}")
        if not isinstance(value, str):
            raise TypeError(f"save_file: metadata value of {_clip(repr(key))} must be str, got "
                            f"{type(value).__name__} {_clip(repr(value))}")
        _check_utf8(key, "metadata key")
        _check_utf8(value, f"metadata value of {_clip(repr(key))}")
    return dict(metadata)


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"save_file: {what} {_clip(repr(text))} cannot be encoded as UTF-8 "
                         f"({exc.reason})") from None


def _build_header(entries: list[_Entry], metadata: dict[str, str]) -> bytes:
    """The JSON header as compact UTF-8, padded with spaces to a multiple of 8 bytes."""
    header: dict[str, object] = {}
    if metadata:
        header[_METADATA_KEY] = {key: metadata[key] for key in sorted(metadata)}
    for e in entries:
        header[e.name] = {"dtype": e.dtype, "shape": list(e.shape),
                          "data_offsets": [e.begin, e.end]}
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":"),
                     allow_nan=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    if len(raw) > MAX_HEADER_SIZE:
        raise ValueError(f"save_file: the header would be {len(raw)} bytes, more than the "
                         f"{MAX_HEADER_SIZE}-byte limit readers accept (too many tensors or too "
                         f"much metadata)")
    return raw


def _little_endian_bytes(array: np.ndarray, dtype: str) -> np.ndarray:
    """The array's data as a flat uint8 array: little-endian, C order (a copy only if needed)."""
    data = np.asarray(array, dtype=_DTYPES[dtype], order="C").reshape(-1).view(np.uint8)
    if dtype == "BOOL" and data.size and data.max() > 1:
        data = (data != 0).view(np.uint8)  # a bool array viewed from other bytes: store 0/1
    return data


def _atomic_write(path: str, header: bytes, entries: list[_Entry],
                  arrays: list[np.ndarray]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        try:
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            _set_permissions(f.fileno(), path)
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            for entry, array in zip(entries, arrays):
                data = _little_endian_bytes(array, entry.dtype)
                for start in range(0, data.size, _WRITE_CHUNK):
                    f.write(data[start:start + _WRITE_CHUNK])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _set_permissions(fd: int, path: str) -> None:
    """Give the new file the mode of the file it replaces, or the umask default (not 0600)."""
    if not hasattr(os, "fchmod"):
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    with contextlib.suppress(OSError):
        os.fchmod(fd, mode)


def _umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # restrictive while it is briefly changed
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where directories can be synced (POSIX); best effort."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------- reading


def load_file(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a checkpoint: ``(tensors, metadata)``.

    The arrays are fresh, writable, owned copies in native byte order, in the header's order.
    Raises CheckpointError (a ValueError naming the file and the problem) for a malformed file.
    """
    path = os.fsdecode(os.fspath(path))
    with open(path, "rb") as f:
        entries, metadata, data_start = _read_header(f, path)
        arrays = {}
        for entry in sorted(entries, key=lambda e: (e.begin, e.end)):  # sequential reads
            arrays[entry.name] = _read_array(f, path, entry, data_start)
    return {e.name: arrays[e.name] for e in entries}, metadata


def load_metadata(path: PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a checkpoint, reading (and fully validating) only its header."""
    path = os.fsdecode(os.fspath(path))
    with open(path, "rb") as f:
        return _read_header(f, path)[1]


def _error(path: str, message: str) -> CheckpointError:
    return CheckpointError(f"{path}: {message}")


def _read_header(f: BinaryIO, path: str) -> tuple[list[_Entry], dict[str, str], int]:
    """Parse and validate the header: entries in header order, metadata, buffer start."""
    size = os.fstat(f.fileno()).st_size
    prefix = f.read(8)
    if len(prefix) < 8:
        raise _error(path, f"file is {len(prefix)} bytes, shorter than the 8-byte header length "
                           f"(empty, truncated or not a safetensors file)")
    n = int.from_bytes(prefix, "little")
    if n > MAX_HEADER_SIZE:
        raise _error(path, f"header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit "
                           f"(corrupted or not a safetensors file)")
    if 8 + n > size:
        raise _error(path, f"header length {n} runs past the end of the {size}-byte file "
                           f"(truncated or not a safetensors file)")
    raw = f.read(n)
    if len(raw) != n:
        raise _error(path, f"file is truncated: read {len(raw)} of the {n} header bytes")
    header = _parse_json(path, raw)
    entries, metadata = [], {}
    for name, info in header.items():
        if name == _METADATA_KEY:
            metadata = _check_metadata(path, info)
        else:
            entries.append(_check_entry(path, name, info))
    _check_tiling(path, entries, size - 8 - n)
    return entries, metadata, 8 + n


def _parse_json(path: str, raw: bytes) -> dict:
    if not raw:
        raise _error(path, "header is empty (length 0); expected a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(path, f"header is not valid UTF-8 ({exc.reason} at header byte "
                           f"{exc.start})") from None
    try:
        header = json.loads(text, object_pairs_hook=_reject_duplicates,
                            parse_constant=_reject_constant)
    except _DuplicateKeyError as exc:
        raise _error(path, f"header has a duplicate key {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"header is not valid JSON ({_clip(str(exc), 120)})") from None
    if not isinstance(header, dict):
        raise _error(path, f"header must be a JSON object, got {_json_type(header)}")
    return header


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(_clip(repr(key)))
        result[key] = value
    return result


def _reject_constant(token: str) -> None:
    raise ValueError(f"{token} is not valid JSON")


def _check_metadata(path: str, info: object) -> dict[str, str]:
    if info is None:  # the reference implementation accepts a null __metadata__
        return {}
    if not isinstance(info, dict):
        raise _error(path, f"{_METADATA_KEY!r} must be an object of string values, got "
                           f"{_json_type(info)}")
    for key, value in info.items():
        if not isinstance(value, str):
            raise _error(path, f"{_METADATA_KEY!r} value of {_clip(repr(key))} must be a string, "
                               f"got {_describe(value)}")
    return info


def _check_entry(path: str, name: str, info: object) -> _Entry:
    where = f"tensor {_clip(repr(name))}"
    if not isinstance(info, dict):
        raise _error(path, f"{where}: expected an object with 'dtype', 'shape' and "
                           f"'data_offsets', got {_json_type(info)}")
    missing = [key for key in _ENTRY_KEYS if key not in info]
    if missing:
        raise _error(path, f"{where}: missing {', '.join(map(repr, missing))}")
    dtype = info["dtype"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        if isinstance(dtype, str) and dtype in _NO_NUMPY_EQUIVALENT:
            raise _error(path, f"{where}: dtype {dtype!r} has no numpy equivalent and cannot be "
                               f"loaded (supported: {', '.join(_DTYPES)})")
        raise _error(path, f"{where}: unknown dtype {_clip(json.dumps(dtype))} (supported: "
                           f"{', '.join(_DTYPES)})")
    shape = info["shape"]
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _error(path, f"{where}: shape must be a list of non-negative integers, got "
                           f"{_clip(json.dumps(shape))}")
    offsets = info["data_offsets"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise _error(path, f"{where}: data_offsets must be [begin, end], two non-negative "
                           f"integers, got {_clip(json.dumps(offsets))}")
    begin, end = offsets
    if begin > end:
        raise _error(path, f"{where}: data_offsets [{begin}, {end}] end before they begin")
    nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
    if end - begin != nbytes:
        raise _error(path, f"{where}: data_offsets [{begin}, {end}] span {end - begin} bytes, "
                           f"but dtype {dtype} with shape {_clip(json.dumps(shape))} needs "
                           f"{nbytes}")
    return _Entry(name, dtype, tuple(shape), begin, end)


def _check_tiling(path: str, entries: list[_Entry], buffer_size: int) -> None:
    """The tensors must cover the byte buffer exactly: no overlap, no hole, no excess."""
    position, previous = 0, None
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.begin < position:
            raise _error(path, f"tensor {_clip(repr(e.name))} at [{e.begin}, {e.end}] overlaps "
                               f"tensor {_clip(repr(previous.name))} at "
                               f"[{previous.begin}, {previous.end}]")
        if e.begin > position:
            raise _error(path, f"hole in the data buffer: bytes [{position}, {e.begin}) belong "
                               f"to no tensor (before tensor {_clip(repr(e.name))})")
        position, previous = e.end, e
    if position > buffer_size:
        raise _error(path, f"file is truncated: tensor {_clip(repr(previous.name))} ends at "
                           f"byte {position} of the data buffer, which holds only {buffer_size} "
                           f"bytes")
    if position < buffer_size:
        raise _error(path, f"{buffer_size - position} bytes of trailing data after the last "
                           f"tensor (the data buffer holds {buffer_size} bytes, the tensors "
                           f"cover {position})")


def _read_array(f: BinaryIO, path: str, entry: _Entry, data_start: int) -> np.ndarray:
    dtype = _DTYPES[entry.dtype]
    try:
        array = np.empty(entry.shape, dtype=dtype)
    except ValueError as exc:  # more than 64 dimensions, or an absurd empty shape
        raise _error(path, f"tensor {_clip(repr(entry.name))}: shape "
                           f"{_clip(json.dumps(entry.shape))} cannot be represented by numpy "
                           f"({exc})") from None
    nbytes = entry.end - entry.begin
    if nbytes:
        f.seek(data_start + entry.begin)
        raw = array.reshape(-1).view(np.uint8)
        got = f.readinto(raw)
        if got != nbytes:
            raise _error(path, f"file is truncated: read {got} of the {nbytes} bytes of tensor "
                               f"{_clip(repr(entry.name))} (did it change while being read?)")
        if entry.dtype == "BOOL" and raw.max() > 1:  # as true as 1 for other readers
            np.not_equal(raw, 0, out=array.reshape(-1))
    if not dtype.isnative:  # big-endian host: swap to native order
        array = array.astype(dtype.newbyteorder("="))
    return array


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_type(value: object) -> str:
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "a number"),
                       (float, "a number"), (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null"


def _describe(value: object) -> str:
    """A JSON value for an error message: its type, and the value itself if short."""
    kind = _json_type(value)
    return kind if value is None else f"{kind} {_clip(json.dumps(value, ensure_ascii=False))}"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
