"""Reading an .npz safely: every array's header first, its data only once checked.

A file is checked before anything is built from it: first each array's header (its shape
and dtype, read from the zip without the data), then the record's JSON (its size, depth and
format), so that a file claiming a huge array or a deeply nested record costs nothing.
Arrays are read with `allow_pickle=False`: a model file can never run code.
"""

import json
import os
import zipfile

import numpy as np

from .record import RECORD_KEY, VERSION, ModelFileError

MAX_RECORD_CHARS = 1 << 24  # 16 M characters; a 200-class model's record is about 20 k
MAX_NESTING = 32  # JSON depth; the record itself needs 5 (its history rows: 3)
READ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError)


class Archive:
    """An .npz opened for checking: `headers` {key: (shape, dtype)} of every array, read
    without its data; `arrays(keys)` then reads the data of those checked."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{self.path}: no such file")
        with open(self.path, "rb") as f:
            if f.read(2) != b"PK":  # every .npz is a zip archive
                raise ModelFileError(f"{self.path} is not a readable .npz file (not a zip archive)")
        try:
            self.zip = zipfile.ZipFile(self.path)
        except READ_ERRORS as e:
            raise self._unreadable(e) from None
        try:
            self.headers = dict(self._header(info) for info in self.zip.infolist())
        except BaseException:
            self.zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def _unreadable(self, e):
        return ModelFileError(
            f"{self.path} is not a readable .npz file (truncated or another format): {e}"
        )

    def _header(self, info):
        key = info.filename.removesuffix(".npy")
        try:
            with self.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"array {key!r} has .npy version {version}")
                start = f.tell()
        except READ_ERRORS as e:
            raise self._unreadable(e) from None
        if dtype.hasobject:
            raise ModelFileError(
                f"{self.path} holds pickled Python objects; minicnn refuses to load them "
                "(a model file must never be able to run code)"
            )
        size = start + int(np.prod(shape, dtype=object)) * dtype.itemsize
        if size != info.file_size:  # the header must not promise more than the file holds
            raise ModelFileError(
                f"{self.path}: array {key!r} declares {shape} {dtype} ({size:,} bytes) but "
                f"holds {info.file_size:,} bytes"
            )
        return key, (tuple(shape), dtype)

    def arrays(self, keys):
        """The data of `keys` (checked before), as {key: ndarray}."""
        try:
            return {
                k: np.lib.format.read_array(self.zip.open(k + ".npy"), allow_pickle=False)
                for k in keys
            }
        except READ_ERRORS as e:
            raise self._unreadable(e) from None

    def record(self, expect_format):
        """The parsed record, refused if it is not JSON, too large, too deep or another format."""
        path = self.path
        if RECORD_KEY not in self.headers:
            what = "model" if expect_format == "minicnn-model" else "checkpoint"
            arrays = sorted(self.headers)
            shown = ", ".join(arrays[:4]) + (", ..." if len(arrays) > 4 else "")
            data = any(name.endswith("_images") for name in arrays)  # MedMNIST's keys
            raise ModelFileError(
                f"{path} is an .npz file but not a minicnn {what} file: it holds the arrays "
                f"{shown or '(none)'} and no {RECORD_KEY!r} record"
                + ("; it looks like a data set: give it with --data" if data else "")
            )
        shape, dtype = self.headers[RECORD_KEY]
        if dtype.kind != "U" or shape != ():
            raise ModelFileError(f"{path}: its {RECORD_KEY!r} record is {dtype} {shape}, not text")
        if dtype.itemsize // 4 > MAX_RECORD_CHARS:
            raise ModelFileError(
                f"{path}: its record has {dtype.itemsize // 4:,} characters, more than the "
                f"{MAX_RECORD_CHARS:,} a minicnn record may have"
            )
        text = str(self.arrays([RECORD_KEY])[RECORD_KEY])
        try:
            record = json.loads(text)
        except RecursionError:
            record = None
        except json.JSONDecodeError as e:
            raise ModelFileError(
                f"{path}: its {RECORD_KEY!r} record is not valid JSON: {e}"
            ) from None
        if record is None or nesting(record) > MAX_NESTING:
            raise ModelFileError(f"{path}: its record nests deeper than {MAX_NESTING} levels")
        if not isinstance(record, dict) or record.get("format") != expect_format:
            found = record.get("format") if isinstance(record, dict) else None
            raise ModelFileError(f"{path} is a {found!r} file, expected {expect_format!r}")
        if record.get("version") != VERSION:
            raise ModelFileError(
                f"{path} has {expect_format} version {record.get('version')!r}; "
                f"this minicnn reads version {VERSION}"
            )
        return record


def nesting(value):
    """Depth of a parsed JSON value (a scalar is 1), counted without recursion."""
    depth, level = 0, [value]
    while level and depth <= MAX_NESTING:
        depth += 1
        level = [
            v
            for x in level
            if isinstance(x, dict | list)
            for v in (x.values() if isinstance(x, dict) else x)
        ]
    return depth
