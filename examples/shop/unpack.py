#!/usr/bin/env python3
"""Choose the code an environment runs, and print its directory.

    unpack.py ARTIFACT DIGEST BUILDS_DIR SOURCE_DIR

With an artifact pinned (`prenv env up ENV --artifact ...`, `prenv promote`),
ARTIFACT is prenv's verified copy of the build (a tarball made by
build-artifact.sh) and DIGEST its "sha256:HEX": the tarball is unpacked into
BUILDS_DIR/HEX (once; a second run finds it there) and that directory is
printed. With nothing pinned (dev, previews, sandboxes), ARTIFACT is empty and
SOURCE_DIR, app/ of the source tree, is printed.

Each build gets its own directory, so a new build changes what this prints,
which changes the service's command, which restarts it on the new code. The
tarball may hold only regular files and directories under relative paths.
"""
import os
import re
import shutil
import sys
import tarfile


def fail(msg):
    sys.exit(f"unpack.py: {msg}")


def safe_members(tar):
    for m in tar.getmembers():
        name = os.path.normpath(m.name)
        if os.path.isabs(name) or name == ".." or name.startswith("../"):
            fail(f"refusing {m.name!r}: outside the build directory")
        if not (m.isfile() or m.isdir()):
            fail(f"refusing {m.name!r}: only files and directories are unpacked")
        yield m


def main(argv):
    if len(argv) != 5:
        fail("usage: unpack.py ARTIFACT DIGEST BUILDS_DIR SOURCE_DIR")
    artifact, digest, builds, source = argv[1:]
    if not artifact:
        print(os.path.abspath(source))
        return 0
    m = re.fullmatch(r"sha256:([0-9a-f]{64})", digest)
    if not m:
        fail(f"not a sha256 digest: {digest!r}")
    dest = os.path.join(builds, m.group(1))
    if not os.path.isfile(os.path.join(dest, "server.py")):
        os.makedirs(builds, exist_ok=True)
        tmp = f"{dest}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(artifact) as tar:
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=list(safe_members(tar)), **kw)
        if not os.path.isfile(os.path.join(tmp, "server.py")):
            shutil.rmtree(tmp, ignore_errors=True)
            fail(f"{artifact} holds no server.py: not a build of the shop")
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(tmp, dest)
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
