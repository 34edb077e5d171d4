"""A folder or a zip seen the same way: a listing of relative paths, readable in place.

A `.zip` is never unpacked: its members are listed from the central directory and read one by
one (each decode worker opens the zip itself). When the root holds a single folder and nothing
else (a zip of `tiny-imagenet-200/`, or a folder that wraps the data set), the listing descends
into it, so both `tiny-imagenet-200.zip` and the unpacked `tiny-imagenet-200/` are found.
"""

import bisect
import os
import zipfile


def _hidden(part):
    return part.startswith(".") or part == "__MACOSX"


class FileTree:
    """Relative posix paths of the files under a folder or inside a zip.

    - path: absolute path of the folder or zip
    - is_zip: True for a zip, read in place
    - prefix: path inside the source where the data set starts ("" or "tiny-imagenet-200/")
    - files: dict {relative path: (size, mtime)} relative to the prefix; hidden files skipped
      (for a zip member: (size, CRC-32))
    - dirs: set of relative folder paths, each ending with "/"
    """

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.is_zip = os.path.isfile(self.path) and zipfile.is_zipfile(self.path)
        self.prefix = ""
        all_files = self._list_zip() if self.is_zip else self._list_folder()
        self.files = {k: v for k, v in all_files.items() if not any(map(_hidden, k.split("/")))}
        self.dirs = {d for d in self._dirs if not any(map(_hidden, d.split("/")[:-1]))}
        for name in self.files:  # zips may omit folder entries: add every parent
            parts = name.split("/")[:-1]
            self.dirs.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
        self._descend_single_folder()
        self._sorted = None
        self._subdirs = {}
        self._zip = None

    def close(self):
        """Close the zip kept open by `read_text`."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def _list_folder(self):
        files = {}
        self._dirs = set()
        for dirpath, dirnames, filenames in os.walk(self.path, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            rel_dir = os.path.relpath(dirpath, self.path).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            if rel_dir:
                self._dirs.add(rel_dir)
            for name in filenames:
                st = os.stat(os.path.join(dirpath, name))
                files[rel_dir + name] = (st.st_size, st.st_mtime_ns)
        return files

    def _list_zip(self):
        with zipfile.ZipFile(self.path) as zf:
            infos = zf.infolist()
        self._dirs = {info.filename for info in infos if info.is_dir()}
        return {info.filename: (info.file_size, info.CRC) for info in infos if not info.is_dir()}

    def _descend_single_folder(self):
        while True:
            tops = {name.split("/", 1)[0] for name in self.files} | {
                d.split("/", 1)[0] for d in self.dirs
            }
            if len(tops) != 1 or any("/" not in name for name in self.files):
                return
            top = tops.pop() + "/"
            self.prefix += top
            self.files = {name[len(top) :]: v for name, v in self.files.items()}
            self.dirs = {d[len(top) :] for d in self.dirs if d != top}

    def display(self, rel=""):
        """Human-readable location of a relative path, for messages."""
        inner = (self.prefix + rel).rstrip("/")
        if self.is_zip:
            return f"{self.path}:{inner}" if inner else self.path
        return os.path.join(self.path, *inner.split("/")) if inner else self.path

    def member(self, rel):
        """What a decode worker needs to open a file: member name in the zip, or full path."""
        if self.is_zip:
            return self.prefix + rel
        return os.path.join(self.path, *(self.prefix + rel).split("/"))

    def read_text(self, rel):
        """Read a small text file of the tree (wnids.txt, val_annotations.txt)."""
        if self.is_zip:
            if self._zip is None:  # parsing a 110k-member directory takes ~0.3 s: do it once
                self._zip = zipfile.ZipFile(self.path)
            data = self._zip.read(self.prefix + rel)
        else:
            with open(self.member(rel), "rb") as f:
                data = f.read()
        return data.decode("utf-8", errors="replace")

    def subdirs(self, rel=""):
        """Sorted names of the folders directly under `rel` ("" or "train/")."""
        if rel not in self._subdirs:
            names = {d[len(rel) :].split("/", 1)[0] for d in self.dirs if d.startswith(rel)}
            self._subdirs[rel] = sorted(names - {""})
        return self._subdirs[rel]

    def files_under(self, rel):
        """Sorted relative paths of all files below folder `rel` (ending with '/')."""
        if self._sorted is None:
            self._sorted = sorted(self.files)
        lo = bisect.bisect_left(self._sorted, rel)
        hi = bisect.bisect_left(self._sorted, rel[:-1] + chr(ord(rel[-1]) + 1)) if rel else None
        return self._sorted[lo:hi]

    def fingerprint(self):
        """Everything the cache key depends on: source identity, size/mtime, member list."""
        st = os.stat(self.path)
        head = [self.path, self.prefix, self.is_zip]
        if self.is_zip:
            head += [st.st_size, st.st_mtime_ns]
        return head + sorted([name, *v] for name, v in self.files.items())
