#!/usr/bin/env python3
"""Clone one real preview env's state file into N env states for `env list`.

  clone_states.py SEED.json STATE_DIR N

SEED.json is the state prenv wrote for pr-1 (`prenv env up pr-1`). Each copy
pr-K is the same text with the env name changed everywhere it appears (env,
tags, resource ids, outputs, URL), the PR number set to K, and the owner
rotated among five users, so the files have prenv's exact layout and size.
Files are written to STATE_DIR/state/pr-K.json with mode 0600, as prenv does.
"""
import os
import re
import sys

OWNERS = ["alice", "bob", "carol", "dave", "erin"]


def main():
    seed, state_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(seed) as f:
        text = f.read()
    if '"env": "pr-1"' not in text or '"number":1,' not in text:
        sys.exit(f"{seed}: not the state of a preview env pr-1")
    owner = re.search(r'"owner": ?"([^"]*)"', text).group(1)
    name_re = re.compile(r"pr-1(?![0-9])")
    d = os.path.join(state_dir, "state")
    os.makedirs(d, mode=0o700, exist_ok=True)
    for k in range(1, n + 1):
        t = name_re.sub(f"pr-{k}", text)
        t = t.replace('"number":1,', f'"number":{k},')
        t = t.replace(f'"owner": "{owner}"', f'"owner": "{OWNERS[k % 5]}"')
        t = t.replace(f'"owner":"{owner}"', f'"owner":"{OWNERS[k % 5]}"')
        path = os.path.join(d, f"pr-{k}.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(t)


if __name__ == "__main__":
    main()
