"""Fetch a public data set: stream to `<file>.part`, resume, verify a pinned checksum, unpack.

An interrupted download leaves only `<file>.part` (never a file that looks finished); the next
call asks the server for the rest with an HTTP Range request and starts over when the server
does not support ranges. The file gets its real name only after its checksum matched.
"""

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tqdm import tqdm

from .dataset import DataError


class DownloadError(ConnectionError, RuntimeError):
    """The server answered with an error (HTTP 404, ...); an OSError, like a lost connection."""


_ZENODO = "https://zenodo.org/records/10519652/files/"

# name -> {size: (url, file name, (algorithm, digest))}; size None: one file for every size.
# MedMNIST digests are the MD5s published in MedMNIST's own INFO table (medmnist/info.py, v3).
# The Tiny ImageNet MD5 is the one torchvision-style loaders (e.g. Avalanche) pin for the
# official cs231n zip (248,100,043 bytes).
SOURCES = {
    "tiny-imagenet": {
        None: (
            "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
            "tiny-imagenet-200.zip",
            ("md5", "90528d7ca1a48142e341f4ef8d21d0de"),
        )
    },
    "pneumoniamnist": {
        28: (
            _ZENODO + "pneumoniamnist.npz?download=1",
            "pneumoniamnist.npz",
            ("md5", "28209eda62fecd6e6a2d98b1501bb15f"),
        ),
        64: (
            _ZENODO + "pneumoniamnist_64.npz?download=1",
            "pneumoniamnist_64.npz",
            ("md5", "8f4eceb4ccffa70c672198ea285246c6"),
        ),
        128: (
            _ZENODO + "pneumoniamnist_128.npz?download=1",
            "pneumoniamnist_128.npz",
            ("md5", "05b46931834c231683c68f40c47b2971"),
        ),
        224: (
            _ZENODO + "pneumoniamnist_224.npz?download=1",
            "pneumoniamnist_224.npz",
            ("md5", "d6a3c71de1b945ea11211b03746c1fe1"),
        ),
    },
}
BLOCK = 1 << 20  # bytes per read
UNPACKED_MARKER = ".minicnn-unpacked"


def download(name, dest, size=64, url=None, sha256=None, progress=True, md5=None, timeout=60):
    """Download a data set into `dest` and return the path to load.

    Inputs:
    - name: "tiny-imagenet" or "pneumoniamnist" (any name works when `url` is given)
    - dest: folder to put the file in (created)
    - size: PneumoniaMNIST image size, 28, 64, 128 or 224 (ignored for Tiny ImageNet, 64)
    - url: another address for the file (a mirror); the pinned checksum still applies
    - sha256, md5: expected hex digest, overriding the pinned one
    - progress: show a tqdm bar; timeout: seconds per network operation

    Returns:
    - path of the .npz, or of the folder a .zip was unpacked into
    """
    url, filename, checksum = _resolve(name, size, url, sha256, md5)
    os.makedirs(dest, exist_ok=True)
    final = os.path.join(os.fspath(dest), filename)
    if os.path.exists(final):
        _verify(final, checksum, f"existing file {final}", delete=False)
    else:
        _fetch(url, final, checksum, progress, timeout)
    if filename.lower().endswith(".zip"):
        return _unpack(final, os.fspath(dest))
    return final


def _resolve(name, size, url, sha256, md5):
    """(url, file name, (algorithm, digest) or None) for a download request."""
    entry = None
    if name in SOURCES:
        table = SOURCES[name]
        if None in table:
            entry = table[None]
        elif size in table:
            entry = table[size]
        else:
            raise DataError(f"{name} comes in sizes {sorted(table)}, not {size}")
    elif url is None:
        raise DataError(f"unknown data set {name!r}: known are {sorted(SOURCES)} (or give url=)")
    checksum = entry[2] if entry else None
    if sha256:
        checksum = ("sha256", sha256.lower())
    elif md5:
        checksum = ("md5", md5.lower())
    if url is None:
        url, filename = entry[0], entry[1]
    else:
        filename = entry[1] if entry else os.path.basename(urllib.parse.urlparse(url).path)
    if not filename:
        raise DataError(f"cannot tell a file name from {url}")
    return url, filename, checksum


def _digest(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path, checksum, what, delete):
    """Raise ValueError when `path` does not have the expected digest (delete it if asked)."""
    if checksum is None:
        print(f"minicnn.data: no checksum pinned for {what}: not verified")
        return
    algorithm, expected = checksum
    got = _digest(path, algorithm)
    if got != expected:
        if delete:
            os.remove(path)
        raise DataError(
            f"{algorithm} of {what} is {got}, expected {expected}"
            + ("; the download was deleted" if delete else "")
        )


def _fetch(url, final, checksum, progress, timeout):
    """Download url to final via final + '.part', resuming a previous partial download."""
    part = final + ".part"
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"User-Agent": "minicnn"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the .part may be complete
            try:
                _verify(part, checksum, f"download of {url}", delete=True)
            except ValueError:
                return _fetch(url, final, checksum, progress, timeout)  # .part deleted: restart
            os.replace(part, final)
            return
        raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionError(f"cannot download {url}: {e}") from e

    with resp:
        resumed = offset > 0 and resp.status == 206
        if resumed and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            resumed = False  # the server answered a range we did not ask for
        if not resumed:
            offset = 0  # the server sends the whole file: start over
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=os.path.basename(final),
            disable=not progress,
            leave=False,
        )
        with open(part, "ab" if resumed else "wb") as f, bar:
            while True:
                try:
                    block = resp.read(BLOCK)
                except (http.client.IncompleteRead, OSError) as e:
                    raise ConnectionError(
                        f"download of {url} was cut at {f.tell()} bytes ({e}); {part} is kept: "
                        "call download() again to resume"
                    ) from e
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
            got = f.tell()
    if total is not None and got < total:
        raise ConnectionError(
            f"download of {url} stopped at {got} of {total} bytes; {part} is kept: "
            "call download() again to resume"
        )
    _verify(part, checksum, f"download of {url}", delete=True)
    os.replace(part, final)


def _unpack(zip_path, dest):
    """Extract a zip next to it (once) and return the folder holding its content.

    A zip whose members all sit in one top folder (tiny-imagenet-200/) gives dest/<top>;
    otherwise the members go to dest/<zip name without .zip>. Members that would land outside
    that folder (absolute paths, '..') are refused.
    """
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        single = len(tops) == 1 and all("/" in n for n in names)
        folder_name = tops.pop() if single else os.path.splitext(os.path.basename(zip_path))[0]
        folder = os.path.join(dest, folder_name)
        stamp = f"{os.path.getsize(zip_path)} {os.path.getmtime(zip_path)}"
        marker = os.path.join(folder, UNPACKED_MARKER)
        if os.path.exists(marker):
            with open(marker) as f:
                if f.read() == stamp:
                    return folder
        elif os.path.exists(folder):
            raise FileExistsError(f"{folder} exists and was not unpacked from {zip_path}")
        tmp = os.path.join(dest, f".unpacking-{folder_name}")
        shutil.rmtree(tmp, ignore_errors=True)
        root = os.path.realpath(tmp)
        for n in names:
            target = os.path.realpath(os.path.join(root, n))
            if os.path.isabs(n) or not target.startswith(root + os.sep):
                raise DataError(f"{zip_path}: member {n!r} would be written outside {dest}")
        zf.extractall(tmp)
    source = os.path.join(tmp, folder_name) if single else tmp
    if os.path.exists(folder):
        shutil.rmtree(folder)  # our own unpack of an older zip (its marker did not match)
    os.replace(source, folder)
    shutil.rmtree(tmp, ignore_errors=True)
    with open(marker, "w") as f:
        f.write(stamp)
    return folder
