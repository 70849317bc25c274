"""What the PyTorch peer benchmarks share: timing a training step, and their result JSON."""
import json
import os
import time

import torch


def time_steps(step, warmup, steps, device):
    """Runs step(i) for i < warmup untimed, then for the next `steps` i timed; returns (seconds,
    the last step's result). On a GPU it synchronises around the timed steps and resets the
    peak-memory counter after the warm-up, so max_memory_allocated covers the timed steps."""
    dev = torch.device(device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warmup):
        step(i)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    result = None
    for i in range(steps):
        result = step(warmup + i)
    sync()
    return time.perf_counter() - t0, result


def emit_result(result, out=None):
    """Prints the result as indented JSON and, with out, writes it there too (to a temporary,
    then renamed, so a reader never sees half a file)."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = "%s.tmp.%d" % (out, os.getpid())
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, out)
