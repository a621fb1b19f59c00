#!/usr/bin/env python3
"""The provider work alone: replay what file.render and exec.command must do
for each resource, with no engine, no state and no DAG, and print the median
wall time in milliseconds.

  floor.py OPS.json DIR PARALLEL REPS

OPS.json is written by bench/gen.py. DIR is a scratch directory (emptied
between phases). PARALLEL threads take the operations from a shared queue;
the DAG is ignored, so with PARALLEL > 1 this is a lower bound on what any
executor needs (with 18 independent chains the DAG rarely limits 8 workers
anyway). The timer runs inside the interpreter, so Python's own start-up is
not counted; the blocking calls (fsync, posix_spawn, waitpid) release the GIL.

Per operation, the same system work the providers do:
  create  file  makedirs(exist_ok), write NAME.tmp, fsync, close, rename,
                fsync the directory (file.render uses fs_write_atomic)
          exec  posix_spawnp(argv) with stdout/stderr to a pipe, read it to
                EOF, waitpid (exec.command captures the output)
  read    file  open, read, SHA-256 (file.render's read hashes the file)
          exec  nothing (exec.command's read trusts the record)
  delete  file  unlink
          exec  nothing (no `delete` command in the template)

Output, one line: create_ms read_ms delete_ms
"""
import hashlib
import json
import os
import queue
import shutil
import statistics
import sys
import threading
import time


def create(op, root):
    if "exec" in op:
        r, w = os.pipe()
        pid = os.posix_spawnp(op["exec"][0], op["exec"], os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, w, 1),
                                            (os.POSIX_SPAWN_DUP2, w, 2),
                                            (os.POSIX_SPAWN_CLOSE, r)])
        os.close(w)
        while os.read(r, 65536):
            pass
        os.close(r)
        os.waitpid(pid, 0)
        return
    path = os.path.join(root, op["file"])
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    os.write(fd, op["content"].encode())
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)


def read(op, root):
    if "file" in op:
        with open(os.path.join(root, op["file"]), "rb") as f:
            hashlib.sha256(f.read()).hexdigest()


def delete(op, root):
    if "file" in op:
        os.unlink(os.path.join(root, op["file"]))


def run(fn, ops, root, parallel):
    q = queue.SimpleQueue()
    for op in ops:
        q.put(op)

    def worker():
        while True:
            try:
                op = q.get_nowait()
            except queue.Empty:
                return
            fn(op, root)

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - t0) * 1000


def main():
    ops_file, root, parallel, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(ops_file) as f:
        ops = json.load(f)
    times = {"create": [], "read": [], "delete": []}
    for _ in range(reps):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        times["create"].append(run(create, ops, root, parallel))
        times["read"].append(run(read, ops, root, parallel))
        times["delete"].append(run(delete, ops, root, parallel))
    shutil.rmtree(root, ignore_errors=True)
    print(" ".join(f"{statistics.median(times[k]):.3f}" for k in ("create", "read", "delete")))


if __name__ == "__main__":
    main()
