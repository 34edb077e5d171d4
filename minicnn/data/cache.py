"""On-disk cache of decoded images: one uncompressed .npz per (source, image size, channels),
and, for a load that reads only some splits, one per such part (`-val` in its name).

The key hashes the source's absolute path, its file list with sizes and mtimes (for a zip: the
zip's size and mtime plus its member list with sizes and CRCs), the image size, the channels
and `LOADER_VERSION`. The key is stored inside the file too and checked on load, so a renamed,
stale, truncated or corrupt file is rebuilt, never trusted. Files are written under a temporary
name and renamed, so a crash mid-write leaves no half file under the real name. No pickle:
everything is a plain array and is read with `allow_pickle=False`.
"""

import hashlib
import json
import os
import re
import tempfile

import numpy as np

LOADER_VERSION = 2  # bump when decoding, preprocessing or the file's contents change
# (2: photos read upright, by their EXIF orientation; images kept per file)


def cache_dir(cache_dir=None):
    """The cache folder: the argument, else $MINICNN_CACHE, else ~/.cache/minicnn."""
    if cache_dir is not None:
        return os.fspath(cache_dir)
    env = os.environ.get("MINICNN_CACHE")
    return env if env else os.path.join(os.path.expanduser("~"), ".cache", "minicnn")


def cache_key(fingerprint, image_size, channels):
    """Hex digest that changes whenever the source or the preprocessing changes."""
    blob = json.dumps([LOADER_VERSION, image_size, channels, fingerprint], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(directory, source, key, image_size, channels, part=""):
    """`<dir>/<source name>-<path hash>-<S>px-<C>ch[-<part>]-<key>.npz`: readable, one per
    source (and part: "val" for a file that holds only the val split's images)."""
    stem = _stem(source, image_size, channels, part)
    return os.path.join(directory, stem + f"-{key[:20]}.npz")


def _stem(source, image_size, channels, part=""):
    source = os.path.abspath(os.fspath(source))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(source.rstrip(os.sep)))[:60]
    where = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{name}-{where}-{image_size}px-{channels}ch" + (f"-{part}" if part else "")


def save(path, key, arrays):
    """Write arrays (dict name -> ndarray, no object arrays) to `path` atomically."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, cache_key=np.array(key), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path, key, names=None):
    """Read a cache file written by `save` for `key`.

    names: the arrays to read (None: all); the others are never read from disk, so one
    split's images come out of a cache of all of them without reading the rest.

    Returns:
    - (dict name -> ndarray, None) on a hit; (None, reason) when the file is missing,
      unreadable, lacks one of `names` or was written for another key
    """
    if not os.path.exists(path):
        return None, "no cache yet"
    try:
        with np.load(path, allow_pickle=False) as z:
            if "cache_key" not in z.files or str(z["cache_key"]) != key:
                return None, f"cache file {path} belongs to another version of the source"
            missing = sorted(set(names or ()) - set(z.files))
            if missing:
                return None, f"cache file {path} lacks {', '.join(missing)}"
            arrays = {n: z[n] for n in (z.files if names is None else names) if n != "cache_key"}
    except Exception as e:  # truncated zip, bad CRC, garbage bytes, object arrays...
        return None, f"cache file {path} is unreadable ({type(e).__name__}: {e})"
    return arrays, None


def remove_stale(path, source, image_size, channels, part=""):
    """Delete older cache files of the same source, settings and part (other keys), keep
    `path`; a file of all splits (part "") also replaces the files of single parts."""
    directory = os.path.dirname(path)
    stem = _stem(source, image_size, channels, part)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        full = os.path.join(directory, name)
        if name.startswith(stem + "-") and name.endswith(".npz") and full != path:
            try:
                os.remove(full)
            except OSError:
                pass
