#!/usr/bin/env python3
"""Dependencies run one way: fails when a file includes a header of a room above its own.

host/ rooms, lowest first: base < comm, data < model < io < train < cli (a room may include its
own headers and those of any lower room); kernels/ and core/ never include host/ headers, and
core/ nothing of kernels/. Headers are included by bare name, so each name is looked up in the
tree. Usage: check_layers.py [REPO_ROOT]"""
import os
import re
import sys

RANK = {"base": 0, "comm": 1, "data": 1, "model": 2, "io": 3, "train": 4, "cli": 5}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    room_of = {}  # header name -> host room
    for room in RANK:
        for name in os.listdir(os.path.join(root, "host", room)):
            room_of[name] = room
    unknown = set(os.listdir(os.path.join(root, "host"))) - set(RANK)
    bad = [f"host/{u}: a folder the layering does not know (add it to RANK)" for u in unknown]
    files = []
    for top in ("host", "kernels", "core"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            files += [os.path.join(dirpath, n) for n in names if n.endswith((".c", ".h", ".cu", ".cuh"))]
    for path in files:
        rel = os.path.relpath(path, root)
        parts = rel.split(os.sep)
        with open(path, encoding="utf-8") as f:
            includes = re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), re.M)
        for inc in includes:
            target = room_of.get(os.path.basename(inc))
            if parts[0] in ("kernels", "core"):
                if target:
                    bad.append(f"{rel} includes {inc} (host/{target}): {parts[0]}/ never reaches into host/")
                elif parts[0] == "core" and inc.startswith(("cpu_", "cuda_")):
                    bad.append(f"{rel} includes {inc}: core/ never reaches into kernels/")
                continue
            mine = parts[1]
            if target and target != mine and RANK[target] >= RANK[mine]:
                bad.append(f"{rel} (host/{mine}) includes {inc} (host/{target}): that arrow runs "
                           f"upwards; move the shared piece down to a lower room")
    for b in bad:
        print("FAIL:", b)
    print(f"check_layers: {len(files)} files, {len(bad)} wrong-way includes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
