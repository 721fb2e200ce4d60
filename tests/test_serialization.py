"""The checkpoint format (tinytape.serialization): safetensors files, written atomically."""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinytape import serialization
from tinytape.serialization import CheckpointError, load_file, load_metadata, save_file

# numpy dtype -> the safetensors name the spec gives it
SAFETENSORS_NAMES = {
    np.bool_: "BOOL", np.uint8: "U8", np.int8: "I8", np.int16: "I16", np.uint16: "U16",
    np.float16: "F16", np.int32: "I32", np.uint32: "U32", np.float32: "F32",
    np.complex64: "C64", np.float64: "F64", np.int64: "I64", np.uint64: "U64",
}
DTYPES = list(SAFETENSORS_NAMES)


def sample(dtype, shape, seed: int = 0) -> np.ndarray:
    """Deterministic values of a dtype, extremes and special values first."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    rng = np.random.default_rng(seed)
    if dt.kind == "b":
        values, special = rng.integers(0, 2, n).astype(bool), [True, False]
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        values = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        special = [info.min, info.max, 0]
    elif dt.kind == "f":
        values = rng.standard_normal(n).astype(dt)
        finfo = np.finfo(dt)
        special = [np.nan, np.inf, -np.inf, -0.0, finfo.max, finfo.smallest_subnormal]
    else:
        values = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
        special = [complex(np.nan, 1.0), complex(-0.0, np.inf)]
    if n >= len(special):
        values[:len(special)] = special
    return values.reshape(shape)


def variants(dtype) -> dict[str, np.ndarray]:
    """0-d, empty, contiguous, non-contiguous, Fortran, broadcast, read-only, big-endian."""
    dt = np.dtype(dtype)
    base = sample(dt, (6, 8), seed=1)
    readonly = sample(dt, (3, 2), seed=2)
    readonly.flags.writeable = False
    out = {
        "scalar": sample(dt, ()),
        "empty": sample(dt, (0,)),
        "empty_3d": sample(dt, (2, 0, 3)),
        "vector": sample(dt, (7,), seed=3),
        "matrix": sample(dt, (3, 5), seed=4),
        "strided": base[::2, 1::3],
        "reversed": base[::-1, ::-2],
        "transposed": base.T,
        "fortran": np.asfortranarray(sample(dt, (4, 3), seed=5)),
        "broadcast": np.broadcast_to(sample(dt, (3,), seed=6), (4, 3)),
        "readonly": readonly,
    }
    if dt.itemsize > 1:
        out["big_endian"] = sample(dt, (2, 3), seed=7).astype(dt.newbyteorder(">"))
    return out


def assert_same(expected: np.ndarray, got: np.ndarray) -> None:
    native = expected.dtype.newbyteorder("=")
    assert got.dtype == native and got.dtype.isnative
    assert got.shape == expected.shape
    assert got.tobytes() == expected.astype(native).tobytes()  # bit-exact (NaN, -0.0)


def raw_header(path) -> dict:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])


def write_raw(path, header, data: bytes = b"", *, length: int | None = None, pad: bool = True):
    """A hand-built file: the 8-byte length, the header (a dict or raw bytes), the data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


@pytest.fixture(autouse=True)
def no_disk_sync(monkeypatch):
    """fsync costs milliseconds on a real disk and no test can observe durability: stub it.

    test_syncs_file_then_renames_then_syncs_directory checks that and when it is called.
    """
    monkeypatch.setattr(os, "fsync", lambda fd: None)


# -------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_every_dtype(tmp_path, dtype):
    tensors = variants(dtype)
    path = tmp_path / "model.safetensors"
    save_file(tensors, path)
    loaded, metadata = load_file(path)
    assert metadata == {}
    assert list(loaded) == list(raw_header(path))  # header order
    assert set(loaded) == set(tensors)
    header = raw_header(path)
    for name, expected in tensors.items():
        got = loaded[name]
        assert_same(expected, got)
        assert header[name]["dtype"] == SAFETENSORS_NAMES[dtype]
        assert header[name]["shape"] == list(expected.shape)
        assert got.flags.writeable and got.flags.owndata and got.flags.c_contiguous
    # the loaded arrays are private copies: changing one changes nothing else
    loaded["vector"][...] = loaded["vector"][::-1]
    assert_same(tensors["vector"], load_file(str(path))[0]["vector"])


def test_metadata_round_trip(tmp_path):
    metadata = {"format": "np", "step": "100", "unicode é 🚀": "值", "empty": "",
                "json": '{"a": [1, 2.5]}', "controls": "a\nb\t\x00c\"\\"}
    tensors = {"w": np.ones((2, 2), np.float32)}
    path = tmp_path / "ckpt.safetensors"
    save_file(tensors, path, metadata)
    loaded, got = load_file(path)
    assert got == metadata
    assert load_metadata(path) == metadata
    assert list(raw_header(path))[0] == "__metadata__"
    save_file(tensors, path, {})
    assert "__metadata__" not in raw_header(path)
    assert load_metadata(path) == {}


def test_same_array_under_two_names_and_overwrite(tmp_path):
    path = tmp_path / "tied.safetensors"
    save_file({"x": np.zeros(3)}, path)
    w = np.arange(4.0)
    save_file({"embed": w, "head": w}, path)
    loaded, _ = load_file(path)
    assert list(loaded) == ["embed", "head"]
    assert_same(w, loaded["embed"])
    assert_same(w, loaded["head"])
    assert not np.shares_memory(loaded["embed"], loaded["head"])


# ------------------------------------------------------------------- the bytes, from the spec


def spec_file(entries, data: bytes, metadata: dict | None = None) -> bytes:
    """Build the expected bytes from the spec: compact JSON, space padding, u64 LE length."""
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":{' + ",".join(f'"{k}":"{v}"' for k, v in metadata.items())
                     + "}")
    for name, dtype, shape, begin, end in entries:
        parts.append(f'"{name}":{{"dtype":"{dtype}","shape":[{",".join(map(str, shape))}],'
                     f'"data_offsets":[{begin},{end}]}}')
    header = ("{" + ",".join(parts) + "}").encode("utf-8")
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def test_byte_exact_layout(tmp_path):
    tensors = {
        "weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "steps": np.array([3, -1], dtype=np.int64),
        "mask": np.array([True, False, True]),
        "half": np.array([1.5], dtype=np.float16),
    }
    # laid out by decreasing alignment, then name: I64, F32, F16, BOOL
    expected = spec_file(
        [("steps", "I64", [2], 0, 16), ("weight", "F32", [2, 3], 16, 40),
         ("half", "F16", [1], 40, 42), ("mask", "BOOL", [3], 42, 45)],
        struct.pack("<2q", 3, -1) + struct.pack("<6f", *range(6)) + struct.pack("<e", 1.5)
        + bytes([1, 0, 1]),
        metadata={"format": "np"},
    )
    path = tmp_path / "exact.safetensors"
    save_file(tensors, path, {"format": "np"})
    assert path.read_bytes() == expected
    (n,) = struct.unpack("<Q", expected[:8])
    assert n % 8 == 0  # so the data (and each tensor, by the alignment order) is aligned


@pytest.mark.parametrize("name, shape, header_len", [
    ("attn.0", (1, 2, 3), 64),    # 64 bytes of JSON: no padding
    ("attn0", (1, 1, 2, 3), 72),  # 65 bytes of JSON: padded with 7 spaces
])
def test_padding_to_eight_bytes(tmp_path, name, shape, header_len):
    path = tmp_path / "pad.safetensors"
    save_file({name: np.arange(6, dtype=np.float32).reshape(shape)}, path)
    expected = spec_file([(name, "F32", list(shape), 0, 24)], struct.pack("<6f", *range(6)))
    assert path.read_bytes() == expected
    assert struct.unpack("<Q", expected[:8])[0] == header_len


def test_no_tensors(tmp_path):
    path = tmp_path / "empty.safetensors"
    save_file({}, path)
    assert path.read_bytes() == struct.pack("<Q", 8) + b"{}      "
    assert load_file(path) == ({}, {})


def test_non_ascii_names_pad_by_bytes(tmp_path):
    path = tmp_path / "utf8.safetensors"
    tensors = {"poids_é": np.ones(3, np.float32), "偏置": np.zeros(1, np.float64)}
    save_file(tensors, path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0 and "poids_é".encode() in data[8:8 + n]  # raw UTF-8, not \u escapes
    loaded, _ = load_file(path)
    for name, value in tensors.items():
        assert_same(value, loaded[name])


def test_reads_a_file_from_another_writer(tmp_path):
    """Whitespace, any key order, metadata last, no padding, empty tensors sharing offsets."""
    header = {
        "a": {"shape": [1], "dtype": "F64", "data_offsets": [8, 16]},
        "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [8, 8]},
        "empty_too": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]},
        "z": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]},
        "__metadata__": {"writer": "someone else"},
    }
    raw = json.dumps(header, indent=2).encode()
    if len(raw) % 8 == 0:
        raw += b"\n"
    path = write_raw(tmp_path / "foreign.safetensors", raw,
                     struct.pack("<2i", 7, -7) + struct.pack("<d", 2.5), pad=False)
    loaded, metadata = load_file(path)
    assert metadata == {"writer": "someone else"}
    assert list(loaded) == ["a", "empty", "empty_too", "z"]
    assert loaded["z"].tolist() == [7, -7] and loaded["a"].tolist() == [2.5]
    assert loaded["empty"].shape == (0, 4) and loaded["empty_too"].dtype == np.uint8


def test_accepts_what_the_reference_reader_accepts(tmp_path):
    """Leading whitespace, extra keys in an entry, a null __metadata__, BOOL bytes above 1."""
    header = (b' \n{"__metadata__": null, "m": {"dtype": "BOOL", "shape": [3], '
              b'"data_offsets": [0, 3], "note": "extra keys are ignored"}}')
    path = write_raw(tmp_path / "lenient.safetensors", header, b"\x00\x01\x02")
    tensors, metadata = load_file(path)
    assert metadata == {}
    m = tensors["m"]
    assert m.tolist() == [False, True, True]
    assert m.view(np.uint8).tolist() == [0, 1, 1]  # stored as a proper numpy bool


def test_cross_check_with_safetensors(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    tensors = {f"{np.dtype(d).name}_{kind}": value for d in DTYPES
               for kind, value in variants(d).items()
               if kind in ("scalar", "empty_3d", "matrix", "strided", "big_endian")}
    ours = tmp_path / "ours.safetensors"
    save_file(tensors, ours, {"format": "np"})
    theirs_read = st_numpy.load_file(str(ours))
    assert set(theirs_read) == set(tensors)
    for name, value in tensors.items():
        assert_same(value, theirs_read[name])
    with safe_open(str(ours), framework="np") as f:
        assert f.metadata() == {"format": "np"}

    theirs = tmp_path / "theirs.safetensors"
    st_numpy.save_file({k: v.astype(v.dtype.newbyteorder("="), order="C")
                        for k, v in tensors.items()}, str(theirs), metadata={"format": "np"})
    loaded, metadata = load_file(theirs)
    assert metadata == {"format": "np"}
    for name, value in tensors.items():
        assert_same(value, loaded[name])
    assert theirs.read_bytes() == ours.read_bytes()  # same layout rules, same bytes


# -------------------------------------------------------------------------------- malformed

F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
DATA_8 = struct.pack("<2f", 1.0, 2.0)


def entry(**changes):
    return {**F32_2, **changes}


# (id, header dict or raw bytes, data, what the message says); all detected from the header
HEADER_CASES = [
    ("not_utf8", b'{"t\xff": 1}', DATA_8, "not valid UTF-8"),
    ("not_json", b'{"t": {"dtype": "F32",}', DATA_8, "not valid JSON"),
    ("truncated_json", b'{"t": {"dtype": "F3', DATA_8, "not valid JSON"),
    ("array_not_object", b"[1, 2]", DATA_8, "must be a JSON object, got an array"),
    ("string_not_object", b' "t"', DATA_8, "must be a JSON object, got a string"),
    ("nan_constant", b'{"__metadata__": {"a": NaN}}', b"", "not valid JSON"),
    ("duplicate_key", b'{"t": %s, "t": %s}' % ((json.dumps(F32_2).encode(),) * 2), DATA_8,
     "duplicate key 't'"),
    ("entry_not_object", {"t": [0, 8]}, DATA_8, "tensor 't': expected an object"),
    ("missing_key", {"t": {"dtype": "F32", "shape": [2]}}, DATA_8, "missing 'data_offsets'"),
    ("unknown_dtype", {"t": entry(dtype="F33")}, DATA_8, "unknown dtype \"F33\""),
    ("lowercase_dtype", {"t": entry(dtype="f32")}, DATA_8, "unknown dtype"),
    ("dtype_number", {"t": entry(dtype=32)}, DATA_8, "unknown dtype 32"),
    ("dtype_list", {"t": entry(dtype=["F32"])}, DATA_8, "unknown dtype"),
    ("bf16", {"t": entry(dtype="BF16", shape=[4])}, DATA_8, "'BF16' has no numpy equivalent"),
    ("shape_string", {"t": entry(shape="2")}, DATA_8, "shape must be a list"),
    ("shape_null", {"t": entry(shape=None)}, DATA_8, "shape must be a list"),
    ("shape_negative", {"t": entry(shape=[-2])}, DATA_8, "shape must be a list"),
    ("shape_float", {"t": entry(shape=[2.0])}, DATA_8, "shape must be a list"),
    ("shape_bool", {"t": entry(shape=[True, True])}, DATA_8, "shape must be a list"),
    ("offsets_one", {"t": entry(data_offsets=[8])}, DATA_8, "data_offsets must be"),
    ("offsets_three", {"t": entry(data_offsets=[0, 8, 8])}, DATA_8, "data_offsets must be"),
    ("offsets_strings", {"t": entry(data_offsets=["0", "8"])}, DATA_8, "data_offsets must be"),
    ("offsets_negative", {"t": entry(data_offsets=[-8, 0])}, DATA_8, "data_offsets must be"),
    ("offsets_float", {"t": entry(data_offsets=[0, 8.0])}, DATA_8, "data_offsets must be"),
    ("offsets_object", {"t": entry(data_offsets={"0": 8})}, DATA_8, "data_offsets must be"),
    ("offsets_reversed", {"t": entry(data_offsets=[8, 0])}, DATA_8, "end before they begin"),
    ("size_mismatch", {"t": entry(shape=[3])}, DATA_8,
     r"span 8 bytes, but dtype F32 with shape \[3\] needs 12"),
    ("overlap", {"a": F32_2, "b": entry(data_offsets=[4, 12])}, DATA_8 + b"\0" * 4,
     r"'b' at \[4, 12\] overlaps tensor 'a'"),
    ("same_offsets", {"a": F32_2, "b": F32_2}, DATA_8, "overlaps"),
    ("hole", {"a": F32_2, "b": entry(data_offsets=[12, 20])}, DATA_8 * 2 + b"\0" * 4,
     r"hole in the data buffer: bytes \[8, 12\)"),
    ("hole_at_start", {"t": entry(data_offsets=[4, 12])}, b"\0" * 4 + DATA_8, "hole"),
    ("trailing_data", {"t": F32_2}, DATA_8 + b"junk", "4 bytes of trailing data"),
    ("data_missing", {"t": F32_2}, DATA_8[:5], "truncated.*holds only 5 bytes"),
    ("no_data", {"t": F32_2}, b"", "truncated"),
    ("metadata_int", {"__metadata__": {"step": 100}}, b"",
     "'__metadata__' value of 'step' must be a string, got a number 100"),
    ("metadata_nested", {"__metadata__": {"a": {"b": "c"}}}, b"", "must be a string"),
    ("metadata_null_value", {"__metadata__": {"a": None}}, b"", "must be a string, got null"),
    ("metadata_string", {"__metadata__": "abc"}, b"", "'__metadata__' must be an object"),
    ("metadata_list", {"__metadata__": ["a", "b"]}, b"", "'__metadata__' must be an object"),
]

# detected only when the data is read
DATA_CASES = [
    ("too_many_dims", {"t": {"dtype": "U8", "shape": [1] * 65, "data_offsets": [0, 1]}},
     b"\x00", "cannot be represented by numpy"),
    ("absurd_empty_shape", {"t": {"dtype": "U8", "shape": [0, 2**70], "data_offsets": [0, 0]}},
     b"", "cannot be represented by numpy"),
]


def check_error(excinfo, path) -> None:
    message = str(excinfo.value)
    assert message.startswith(f"{path}: "), message
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("header, data, pattern", [c[1:] for c in HEADER_CASES],
                         ids=[c[0] for c in HEADER_CASES])
def test_malformed_header(tmp_path, header, data, pattern):
    path = write_raw(tmp_path / "bad.safetensors", header, data)
    for load in (load_file, load_metadata):
        with pytest.raises(CheckpointError, match=pattern) as excinfo:
            load(path)
        check_error(excinfo, path)


@pytest.mark.parametrize("header, data, pattern", [c[1:] for c in DATA_CASES],
                         ids=[c[0] for c in DATA_CASES])
def test_malformed_data(tmp_path, header, data, pattern):
    path = write_raw(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(CheckpointError, match=pattern) as excinfo:
        load_file(path)
    check_error(excinfo, path)


@pytest.mark.parametrize("content, pattern", [
    (b"", "file is 0 bytes, shorter than the 8-byte header length"),
    (b"\x08", "file is 1 bytes, shorter"),
    (b"\x08\0\0\0\0\0\0", "file is 7 bytes, shorter"),
    (struct.pack("<Q", 1000) + b"{}      ", "header length 1000 runs past the end of the "
                                            "16-byte file"),
    (struct.pack("<Q", 0), "header is empty"),
    (struct.pack("<Q", 100_000_001) + b"{}", "header length 100000001 exceeds the "
                                             "100000000-byte limit"),
    (struct.pack("<Q", 2**64 - 1) + b"{}", "exceeds the 100000000-byte limit"),
], ids=["empty", "1_byte", "7_bytes", "past_end", "zero_length", "over_limit", "u64_max"])
def test_malformed_length_prefix(tmp_path, content, pattern):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    for load in (load_file, load_metadata):
        with pytest.raises(CheckpointError, match=pattern) as excinfo:
            load(path)
        check_error(excinfo, path)


def test_header_limit_is_enforced_both_ways(tmp_path, monkeypatch):
    path = tmp_path / "big.safetensors"
    save_file({"w": np.zeros(2)}, path, {"note": "x" * 40})
    monkeypatch.setattr(serialization, "MAX_HEADER_SIZE", 64)
    with pytest.raises(CheckpointError, match="exceeds the 64-byte limit"):
        load_file(path)
    with pytest.raises(ValueError, match="more than the 64-byte limit"):
        save_file({"w": np.zeros(2)}, tmp_path / "other.safetensors", {"note": "x" * 40})
    assert not (tmp_path / "other.safetensors").exists()


def valid_file(tmp_path):
    path = tmp_path / "good.safetensors"
    save_file({"w": np.arange(1, 7, dtype=np.float32).reshape(2, 3),
               "b": np.array([1, 2], np.int64), "m": np.array([True, False])},
              path, {"epoch": "3"})
    return path, path.read_bytes()


def test_truncated_anywhere(tmp_path):
    path, good = valid_file(tmp_path)
    (n,) = struct.unpack("<Q", good[:8])
    cut_points = {0, 1, 7, 8, 9, 8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1, 8 + n + 20,
                  len(good) - 1}
    for cut in sorted(cut_points):
        path.write_bytes(good[:cut])
        with pytest.raises(CheckpointError, match="truncated") as excinfo:
            load_file(path)
        assert str(path) in str(excinfo.value)


def test_corrupted_header_bytes(tmp_path):
    """Any byte of the header changed: either still a valid file, or a CheckpointError."""
    path, good = valid_file(tmp_path)
    (n,) = struct.unpack("<Q", good[:8])
    errors = 0
    with open(path, "r+b", buffering=0) as f:
        for position in range(8, 8 + n):
            for byte in (0xFF, ord('"'), ord("}"), ord("9")):
                if good[position] == byte:
                    continue
                f.seek(position)
                f.write(bytes([byte]))
                try:
                    load_file(path)
                except CheckpointError as exc:
                    assert str(exc).startswith(f"{path}: ")
                    errors += 1
            f.seek(position)
            f.write(good[position:position + 1])
    assert errors > 3 * n  # nearly every change is caught


@pytest.mark.parametrize("position, replacement, pattern", [
    (8, b"[", "not valid JSON"),  # the opening brace
    (None, b"\xc3", "not valid UTF-8"),  # a stray UTF-8 lead byte in the middle
])
def test_flipped_header_byte(tmp_path, position, replacement, pattern):
    path, good = valid_file(tmp_path)
    position = position or 8 + good[8:].index(b'"dtype"')
    path.write_bytes(good[:position] + replacement + good[position + 1:])
    with pytest.raises(CheckpointError, match=pattern):
        load_file(path)


def test_flipped_length_prefix_bits(tmp_path):
    path, good = valid_file(tmp_path)
    with open(path, "r+b", buffering=0) as f:
        for bit in range(64):
            f.seek(0)
            f.write((int.from_bytes(good[:8], "little") ^ (1 << bit)).to_bytes(8, "little"))
            with pytest.raises(CheckpointError):
                load_file(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nope.safetensors")
    assert issubclass(CheckpointError, ValueError)


# ------------------------------------------------------------------------------- atomicity

OLD = {"w": np.arange(4.0)}


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(OLD, path, {"version": "old"})
    return path, path.read_bytes()


def assert_untouched(path, old_bytes) -> None:
    assert path.read_bytes() == old_bytes
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    tensors, metadata = load_file(path)
    assert metadata == {"version": "old"}
    assert_same(OLD["w"], tensors["w"])


NEW = {"w": np.ones((64, 64), np.float32), "b": np.zeros(64, np.float32)}


def test_syncs_file_then_renames_then_syncs_directory(tmp_path, monkeypatch):
    events = []
    real_replace = os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync", "directory" if stat.S_ISDIR(info.st_mode) else info.st_size))

    def replace(src, dst):
        events.append(("replace", os.path.basename(src), os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "m.safetensors"
    save_file(NEW, path)
    size = path.stat().st_size
    assert events[:2] == [("fsync", size), ("replace", events[1][1], size)]  # all data synced
    assert events[1][1].startswith("m.safetensors.")  # a temp file named after the target
    assert events[2:] == ([("fsync", "directory")] if os.name == "posix" else [])


def test_crash_at_rename_keeps_old_file(old_file, monkeypatch):
    path, old_bytes = old_file

    def crash(src, dst):
        raise OSError(errno.EIO, "simulated crash in os.replace")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_file(NEW, path, {"version": "new"})
    monkeypatch.undo()
    assert_untouched(path, old_bytes)


def test_crash_at_fsync_keeps_old_file(old_file, monkeypatch):
    path, old_bytes = old_file

    def crash(fd):
        raise OSError(errno.EIO, "simulated fsync failure")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated fsync"):
        save_file(NEW, path, {"version": "new"})
    monkeypatch.undo()
    assert_untouched(path, old_bytes)


class FailingFile:
    """A file that fails (disk full, or an interrupt) once `limit` bytes have been written."""

    def __init__(self, file, limit: int, exc: BaseException):
        self.file, self.limit, self.exc, self.written = file, limit, exc, 0

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        room = self.limit - self.written
        if len(data) > room:
            self.file.write(data[:room])
            self.written = self.limit
            raise self.exc
        self.written += len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()


@pytest.mark.parametrize("limit", [0, 5, 8 + 16, 8 + 400, 8 + 2000])
@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 KeyboardInterrupt()], ids=["disk_full", "interrupt"])
def test_crash_mid_write_keeps_old_file(old_file, monkeypatch, limit, exc):
    path, old_bytes = old_file
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen",
                        lambda fd, *a, **k: FailingFile(real_fdopen(fd, *a, **k), limit, exc))
    with pytest.raises(type(exc)):
        save_file(NEW, path, {"version": "new"})
    monkeypatch.undo()
    assert_untouched(path, old_bytes)


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def crash(src, dst):
        raise OSError("boom")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="boom"):
        save_file(NEW, tmp_path / "model.safetensors")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_killed_process_keeps_old_file(old_file):
    """A real SIGKILL after the data is written, before the rename."""
    path, old_bytes = old_file
    script = textwrap.dedent(f"""
        import importlib.util, os, signal, sys
        import numpy as np
        spec = importlib.util.spec_from_file_location("ser", {serialization.__file__!r})
        ser = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ser)
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        ser.save_file({{"w": np.ones((256, 256))}}, sys.argv[1], {{"version": "new"}})
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path)], timeout=60)
    assert done.returncode == -9
    assert path.read_bytes() == old_bytes
    leftovers = sorted(set(os.listdir(path.parent)) - {path.name})
    # a hard kill cannot clean up: the debris is one temporary file named after the target
    assert len(leftovers) == 1 and leftovers[0].startswith(path.name + ".")
    assert leftovers[0].endswith(".tmp")
    assert load_metadata(path) == {"version": "old"}


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_permissions_are_not_those_of_a_temp_file(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    path = tmp_path / "perm.safetensors"
    save_file(OLD, path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    path.chmod(0o640)
    save_file(OLD, path)  # replacing a file keeps its mode
    assert path.stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------- refusing input

ARRAY = np.zeros(2, np.float32)


@pytest.mark.parametrize("tensors, error, pattern", [
    ([("w", ARRAY)], TypeError, "tensors must be a mapping"),
    ({1: ARRAY}, TypeError, "tensor names must be str, got int 1"),
    ({b"w": ARRAY}, TypeError, "tensor names must be str, got bytes b'w'"),
    ({"": ARRAY}, ValueError, "non-empty"),
    ({"__metadata__": ARRAY}, ValueError, "'__metadata__' is reserved"),
    ({"bad\ud800": ARRAY}, ValueError, "tensor name 'bad\\\\ud800' cannot be encoded as UTF-8"),
    ({"bad_tensor": [1.0, 2.0]}, TypeError, "'bad_tensor' must be a numpy.ndarray, got list"),
    ({"bad_tensor": np.float32(1)}, TypeError, "'bad_tensor' must be a numpy.ndarray"),
    ({"bad_tensor": np.array(["a"])}, TypeError, "'bad_tensor' has dtype <U1"),
    ({"bad_tensor": np.array([1], object)}, TypeError, "'bad_tensor' has dtype object"),
    ({"bad_tensor": np.array([1j])}, TypeError, "'bad_tensor' has dtype complex128"),
    ({"bad_tensor": np.array(["2020-01-01"], "datetime64[D]")}, TypeError,
     "'bad_tensor' has dtype datetime64"),
    ({"bad_tensor": np.zeros(2, [("a", "<f4")])}, TypeError, "'bad_tensor' has dtype"),
    ({"bad_tensor": np.ma.array([1.0, 2.0], mask=[0, 1])}, TypeError,
     "'bad_tensor' is a masked array"),
], ids=["not_mapping", "int_name", "bytes_name", "empty_name", "reserved_name",
        "surrogate_name", "list", "numpy_scalar", "str_dtype", "object_dtype", "complex128",
        "datetime", "structured", "masked"])
def test_save_refuses_bad_tensors(tmp_path, tensors, error, pattern):
    with pytest.raises(error, match=pattern):
        save_file(tensors, tmp_path / "bad.safetensors")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("metadata, error, pattern", [
    ("format=np", TypeError, "metadata must be a mapping of str to str or None, got str"),
    ({1: "a"}, TypeError, "metadata keys must be str, got int 1"),
    ({"step": 100}, TypeError, "metadata value of 'step' must be str, got int 100"),
    ({"note": None}, TypeError, "metadata value of 'note' must be str, got NoneType"),
    ({"note": "\udc80"}, ValueError, "metadata value of 'note'.*cannot be encoded as UTF-8"),
], ids=["not_mapping", "int_key", "int_value", "none_value", "surrogate_value"])
def test_save_refuses_bad_metadata(tmp_path, metadata, error, pattern):
    with pytest.raises(error, match=pattern):
        save_file({"w": ARRAY}, tmp_path / "bad.safetensors", metadata)
    assert os.listdir(tmp_path) == []


def test_bool_arrays_with_odd_bytes_are_stored_as_0_or_1(tmp_path):
    odd = np.array([0, 1, 2, 255], np.uint8).view(np.bool_)
    path = tmp_path / "bool.safetensors"
    save_file({"m": odd}, path)
    assert path.read_bytes()[-4:] == bytes([0, 1, 1, 1])
    assert load_file(path)[0]["m"].tolist() == [False, True, True, True]
