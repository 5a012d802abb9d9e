"""ONNX tensors to numpy arrays, checked before anything is allocated.

``tensor_to_array(proto, base_dir)``:

- the element type must be one tcomp supports (``ONNX_DTYPES``);
- dimensions must be non-negative and the tensor at most ``MAX_TENSOR_BYTES``;
- the bytes present (``raw_data``, the typed ``*_data`` field, or the external file's range) must be exactly what
  the declared shape needs;
- external data is read only from a regular file inside ``base_dir`` (the model's folder): absolute paths, ``..``
  components, symbolic links (on any component), hard links (a file with more than one name: another name may be
  outside the folder), ranges with negative or out-of-file offsets or lengths, and models loaded without a folder
  are refused.

Every violation raises ``GraphError`` naming the tensor.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from onnx import TensorProto

from tcomp.graph.infer import MAX_TENSOR_BYTES
from tcomp.graph.ir import GraphError
from tcomp.ir import dtype as dt

ONNX_DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "float32",
    TensorProto.UINT8: "uint8",
    TensorProto.INT8: "int8",
    TensorProto.UINT16: "uint16",
    TensorProto.INT16: "int16",
    TensorProto.INT32: "int32",
    TensorProto.INT64: "int64",
    TensorProto.BOOL: "bool",
    TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16",
    TensorProto.FLOAT8E4M3FN: "float8_e4m3fn",
    TensorProto.FLOAT8E4M3FNUZ: "float8_e4m3fnuz",
    TensorProto.FLOAT8E5M2: "float8_e5m2",
    TensorProto.FLOAT8E5M2FNUZ: "float8_e5m2fnuz",
    TensorProto.INT4: "int4",
    TensorProto.UINT4: "uint4",
    TensorProto.INT2: "int2",
    TensorProto.UINT2: "uint2",
    TensorProto.DOUBLE: "float64",
    TensorProto.UINT32: "uint32",
    TensorProto.UINT64: "uint64",
}


def onnx_dtype(code: int, what: str) -> str:
    dtype = ONNX_DTYPES.get(int(code))
    if dtype is None:
        name = TensorProto.DataType.Name(code) if code in TensorProto.DataType.values() else str(code)
        raise GraphError(f"{what}: element type {name} is not supported "
                         f"(supported: {', '.join(sorted(set(ONNX_DTYPES.values())))})")
    return dtype


def _typed_field(proto: TensorProto, dtype: str) -> tuple[str, np.dtype]:
    """The repeated field holding the values of a tensor of ``dtype`` and its storage type."""
    if dtype == "float32":
        return "float_data", np.dtype(np.float32)
    if dtype == "float64":
        return "double_data", np.dtype(np.float64)
    if dtype == "int64":
        return "int64_data", np.dtype(np.int64)
    if dtype in ("uint32", "uint64"):
        return "uint64_data", np.dtype(np.uint64)
    return "int32_data", np.dtype(np.int32)  # int8/16/32, uint8/16, bool, 16- and 8-bit floats (as bits)


def tensor_to_array(proto: TensorProto, base_dir: Path | None, what: str | None = None) -> np.ndarray:
    what = what or f"tensor {proto.name!r}"
    dtype = onnx_dtype(proto.data_type, what)
    dims = [int(d) for d in proto.dims]
    if any(d < 0 for d in dims):
        raise GraphError(f"{what}: negative dimension in shape {dims}")
    numel = math.prod(dims)
    itemsize = dt.to_numpy(dtype).itemsize
    if numel * itemsize > MAX_TENSOR_BYTES:
        raise GraphError(f"{what}: shape {dims} would take {numel * itemsize} bytes, more than the limit of "
                         f"{MAX_TENSOR_BYTES}")
    stored = -(-numel // _per_byte(dtype))  # the elements, or the bytes of packed 4- and 2-bit integers
    if proto.HasField("segment"):
        raise GraphError(f"{what}: segmented tensors are not supported")
    if proto.data_location == TensorProto.EXTERNAL:
        return _from_bytes(read_external(proto, base_dir, stored * itemsize, what), dtype, numel, dims)
    if proto.HasField("raw_data"):
        raw = proto.raw_data
        if len(raw) != stored * itemsize:
            raise GraphError(f"{what}: shape {dims} of {dtype} needs {stored * itemsize} bytes of raw data, found "
                             f"{len(raw)}")
        return _from_bytes(raw, dtype, numel, dims)
    field, storage = _typed_field(proto, dtype)
    values = getattr(proto, field)
    if len(values) != stored:
        raise GraphError(f"{what}: shape {dims} needs {stored} values, {field} holds {len(values)}")
    array = np.array(values, dtype=storage)
    if _per_byte(dtype) > 1:
        return _unpacked(array.astype(np.uint8), dtype, numel, dims)
    if dtype == "float16" or dt.to_numpy(dtype).kind == "V":  # 16- and 8-bit floats, as their bits
        return array.astype(f"uint{8 * itemsize}").view(dt.to_numpy(dtype)).reshape(dims)
    return array.astype(dtype).reshape(dims)


def _per_byte(dtype: str) -> int:
    """How many elements of ``dtype`` ONNX packs into a byte: 2 for 4-bit integers, 4 for 2-bit ones, else 1."""
    return 8 // dt.bits(dtype) if dtype in dt.SMALL_INTEGERS else 1


def _from_bytes(raw: bytes, dtype: str, numel: int, dims: list[int]) -> np.ndarray:
    """The array of ``dims`` that ``raw`` holds: little-endian elements, or packed 4- and 2-bit integers."""
    if _per_byte(dtype) > 1:
        return _unpacked(np.frombuffer(raw, np.uint8), dtype, numel, dims)
    return np.frombuffer(raw, dtype=dt.to_numpy(dtype).newbyteorder("<")).astype(dtype).reshape(dims)


def _unpacked(packed: np.ndarray, dtype: str, numel: int, dims: list[int]) -> np.ndarray:
    """The 4- or 2-bit integers that the bytes ``packed`` hold, the first in each byte's low bits, one per byte as
    ``ml_dtypes`` holds them."""
    per_byte = _per_byte(dtype)
    width = 8 // per_byte
    shifts = np.arange(per_byte, dtype=np.uint8) * width
    values = (packed[:, None] >> shifts) & np.uint8((1 << width) - 1)
    return np.ascontiguousarray(values.reshape(-1)[:numel]).view(dt.to_numpy(dtype)).reshape(dims)


def _external_entries(proto: TensorProto, what: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for entry in proto.external_data:
        entries[entry.key] = entry.value
    if "location" not in entries or not entries["location"]:
        raise GraphError(f"{what}: external data without a location")
    return entries


def _parse_int(text: str, key: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise GraphError(f"{what}: external data {key} {text!r} is not an integer") from None
    if value < 0:
        raise GraphError(f"{what}: external data {key} {value} is negative")
    return value


def resolve_external_path(location: str, base_dir: Path, what: str) -> Path:
    """``location`` inside ``base_dir``, or a ``GraphError``: only plain relative paths to regular files, no ``..``,
    no symbolic links anywhere along the path, no file with other names (hard links)."""
    if "\x00" in location:
        raise GraphError(f"{what}: external data location contains a NUL byte")
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("/", "\\")):
        raise GraphError(f"{what}: external data location {location!r} is an absolute path; only paths inside the "
                         "model's folder are allowed")
    parts = [p for p in location.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise GraphError(f"{what}: external data location {location!r} leaves the model's folder ('..')")
    if not parts:
        raise GraphError(f"{what}: external data location {location!r} names no file")
    root = base_dir.resolve()
    current = root
    for part in parts:
        current = current / part
        try:
            info = os.lstat(current)
        except OSError:
            raise GraphError(f"{what}: external data file {location!r} does not exist in the model's folder") from None
        if stat.S_ISLNK(info.st_mode):
            raise GraphError(f"{what}: external data location {location!r} goes through a symbolic link")
    info = os.lstat(current)
    if not stat.S_ISREG(info.st_mode):
        raise GraphError(f"{what}: external data location {location!r} is not a regular file")
    if info.st_nlink > 1:
        raise GraphError(f"{what}: external data file {location!r} is a hard link ({info.st_nlink} names): its "
                         "other names may be outside the model's folder; copy the data into a file of its own")
    if root not in current.resolve().parents:
        raise GraphError(f"{what}: external data location {location!r} is outside the model's folder")
    return current


def read_external(proto: TensorProto, base_dir: Path | None, nbytes: int, what: str) -> bytes:
    entries = _external_entries(proto, what)
    if base_dir is None:
        raise GraphError(f"{what}: the tensor's data is in an external file, but the model was not loaded from a "
                         "path; load it from its file so the data can be found in the model's folder")
    path = resolve_external_path(entries["location"], base_dir, what)
    offset = _parse_int(entries.get("offset", "0"), "offset", what)
    size = os.lstat(path).st_size
    if offset > size:
        raise GraphError(f"{what}: external data offset {offset} is beyond the end of {entries['location']!r} "
                         f"({size} bytes)")
    if "length" in entries:
        length = _parse_int(entries["length"], "length", what)
        if offset + length > size:
            raise GraphError(f"{what}: external data range [{offset}, {offset + length}) is beyond the end of "
                             f"{entries['location']!r} ({size} bytes)")
        if length != nbytes:
            raise GraphError(f"{what}: shape needs {nbytes} bytes, the external data length is {length}")
    elif size - offset < nbytes:
        raise GraphError(f"{what}: shape needs {nbytes} bytes, {entries['location']!r} has {size - offset} after "
                         f"offset {offset}")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        remaining = nbytes
        while remaining:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                raise GraphError(f"{what}: {entries['location']!r} ended before {nbytes} bytes were read")
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
