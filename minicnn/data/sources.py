"""A folder or a zip seen the same way: a listing of relative paths, readable in place.

A `.zip` is never unpacked: its members are listed from the central directory and read one by
one (each decode worker opens the zip itself). When the root holds a single folder and nothing
else (a zip of `tiny-imagenet-200/`, or a folder that wraps the data set), the listing descends
into it, so both `tiny-imagenet-200.zip` and the unpacked `tiny-imagenet-200/` are found. A lone
`test/` or `val/` folder is not entered: its name says which split its class folders are.

Folders are walked by `walk`: links to folders are followed, but never into a folder already
read (a link back up the tree is no loop) and never deeper than MAX_DEPTH; a broken link, an
unreadable folder or a vanished file is left out and said, never raised. File names that are
not valid UTF-8 are read like any other (Python keeps their bytes); `printable` shows them.
"""

import bisect
import os
import zipfile

MAX_DEPTH = 32  # folders below the root: far more than any data set nests
VAL_NAMES = ("val", "valid", "validation")  # folder names of a validation split


def printable(path):
    """A path as text that can always be printed: bytes that are not UTF-8 shown as \\xNN."""
    try:
        raw = os.fspath(path).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file system byte made
        return os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def walk(root, skipped, max_depth=MAX_DEPTH):
    """Walk a folder top-down like os.walk(followlinks=True), without loops.

    Yields (rel_dir, dirnames, filenames): rel_dir "" or "a/b/" (posix); names sorted; remove
    names from dirnames to prune them. A link to a folder is followed only when the folder
    lies outside the tree (inside, it is read at its own place) and holds no part of it (a
    link back up is a loop), and only once. Nothing deeper than max_depth, no unreadable
    folder, no broken link is entered; a message naming each such path is appended to
    `skipped` (a list).
    """
    top = os.path.realpath(root)
    seen = set()  # (device, inode) of every folder read: no folder is read twice
    stack = [("", 0)]
    while stack:
        rel_dir, depth = stack.pop()
        full = os.path.join(root, *rel_dir.split("/")[:-1])  # "a/b/" -> root/a/b
        if rel_dir and os.path.islink(full) and not _followable(full, top, skipped):
            continue
        try:
            st = os.stat(full)
            with os.scandir(full) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            skipped.append(f"cannot read folder {printable(full)}: {e.strerror or e}")
            continue
        if (st.st_dev, st.st_ino) in seen:
            skipped.append(f"not followed: {printable(full)} leads to a folder read already")
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames, filenames = [], []
        for entry in entries:
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow links
            except OSError:
                is_dir = is_file = False
            if is_dir:
                dirnames.append(entry.name)
            elif is_file:
                filenames.append(entry.name)
            elif entry.is_symlink():
                skipped.append(f"broken link: {printable(entry.path)}")
        yield rel_dir, dirnames, filenames
        if depth >= max_depth and dirnames:
            skipped.append(f"not read: folders below {printable(full)} (deeper than {max_depth})")
            continue
        stack += [(f"{rel_dir}{d}/", depth + 1) for d in reversed(dirnames)]


def _followable(link, top, skipped):
    """Whether walk enters the folder link `link` points to; if not, say why in skipped."""
    target = os.path.realpath(link)
    if os.path.commonpath([target, os.path.realpath(os.path.dirname(link))]) == target:
        why = "a link back up the tree (a loop)"  # to a folder that holds the link
    elif os.path.commonpath([target, top]) == top:
        why = "a link to a folder inside the tree, read at its own place"
    else:
        return True
    skipped.append(f"not followed: {printable(link)} -> {printable(target)}, {why}")
    return False


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
    - skipped: messages about what the walk left out (links read already, broken links, ...)
    """

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.is_zip = os.path.isfile(self.path) and zipfile.is_zipfile(self.path)
        self.prefix = ""
        self.skipped = []
        self._zip = None  # the zip, opened once: its directory is read for the listing and
        # kept for read_text (parsing a 110k-member directory takes seconds)
        all_files = self._list_zip() if self.is_zip else self._list_folder()
        self.files = {k: v for k, v in all_files.items() if not any(map(_hidden, k.split("/")))}
        self.dirs = {d for d in self._dirs if not any(map(_hidden, d.split("/")[:-1]))}
        for name in self.files:  # zips may omit folder entries: add every parent
            parts = name.split("/")[:-1]
            self.dirs.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
        self._descend_single_folder()
        self._sorted = None
        self._subdirs = {}

    def close(self):
        """Close the zip kept open by `read_text`."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def _list_folder(self):
        files = {}
        self._dirs = set()
        for rel_dir, dirnames, filenames in walk(self.path, self.skipped):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            if rel_dir:
                self._dirs.add(rel_dir)
            for name in filenames:
                full = os.path.join(self.path, *rel_dir.split("/")[:-1], name)
                try:
                    st = os.stat(full)
                except OSError as e:  # removed, or made unreadable, since the listing
                    self.skipped.append(f"cannot read {printable(full)}: {e.strerror or e}")
                    continue
                files[rel_dir + name] = (st.st_size, st.st_mtime_ns)
        return files

    def _list_zip(self):
        self._zip = zipfile.ZipFile(self.path)
        infos = self._zip.infolist()
        self._dirs = {info.filename for info in infos if info.is_dir()}
        return {info.filename: (info.file_size, info.CRC) for info in infos if not info.is_dir()}

    def _descend_single_folder(self):
        while True:
            tops = {name.split("/", 1)[0] for name in self.files} | {
                d.split("/", 1)[0] for d in self.dirs
            }
            if len(tops) != 1 or any("/" not in name for name in self.files):
                return
            if next(iter(tops)).lower() in (*VAL_NAMES, "test"):  # a split, not a wrapper
                return
            top = tops.pop() + "/"
            self.prefix += top
            self.files = {name[len(top) :]: v for name, v in self.files.items()}
            self.dirs = {d[len(top) :] for d in self.dirs if d != top}

    def display(self, rel=""):
        """Human-readable location of a relative path, for messages (always printable)."""
        inner = (self.prefix + rel).rstrip("/")
        if self.is_zip:
            return printable(f"{self.path}:{inner}" if inner else self.path)
        return printable(os.path.join(self.path, *inner.split("/")) if inner else self.path)

    def member(self, rel):
        """What a decode worker needs to open a file: member name in the zip, or full path."""
        if self.is_zip:
            return self.prefix + rel
        return os.path.join(self.path, *(self.prefix + rel).split("/"))

    def read_text(self, rel):
        """Read a small text file of the tree (wnids.txt, val_annotations.txt)."""
        if self.is_zip:
            if self._zip is None:  # closed since the listing
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
