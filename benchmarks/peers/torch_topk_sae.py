#!/usr/bin/python3
"""A plain PyTorch TopK SAE training step, written the way the common Python SAE libraries
(SAELens, sparsify) write it, as the peer saec's throughput is compared with.

One step:
    pre   = (x - b_dec) @ W_enc + b_enc                       dense encoder      [N, m]
    top   = torch.topk(pre, k); f = ReLU(values)
    dense = zeros[N, m].scatter(-1, indices, f)               dense codes, as SAELens does
    x_hat = dense @ W_dec + b_dec                             DENSE decoder      [N, d]
    loss  = sum((x_hat - x)^2) / sum((x - mu)^2)              normalised MSE (SPEC §1)
    autograd backward; remove the decoder-parallel gradient component (sparsify, SPEC §1);
    torch.optim.Adam step; renormalise the decoder rows to unit norm.

Input is random normal data of the requested shape (fixed seed, a pool of a few batches
reused), so the figure is the cost of the step alone, not of any data pipeline. Timing covers
--steps steps after --warmup steps (with torch.cuda.synchronize on a GPU).

Run it with Debian's interpreter (/usr/bin/python3), which has torch.
"""
import argparse
import contextlib
import math
import os
import sys

import torch

from peer_timing import emit_result, time_steps


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=64, help="input width d")
    p.add_argument("--m", type=int, default=512, help="latents m")
    p.add_argument("--k", type=int, default=8, help="active latents per token")
    p.add_argument("--batch", type=int, default=1024, help="tokens per step N")
    p.add_argument("--steps", type=int, default=100, help="timed steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all cores)")
    p.add_argument("--bf16-autocast", action="store_true",
                   help="run forward and loss under torch.autocast(bfloat16), as SAELens and "
                        "sparsify train on a GPU (on the CPU: CPU autocast, for testing)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--pool", type=int, default=4, help="distinct random batches, reused in turn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the result JSON here as well")
    a = p.parse_args(argv)
    if not (1 <= a.k <= a.m):
        p.error("need 1 <= k <= m")
    if min(a.d, a.m, a.batch, a.steps, a.pool) < 1 or a.warmup < 0:
        p.error("sizes and --steps must be positive, --warmup non-negative")
    return a


class TopKSAE(torch.nn.Module):
    def __init__(self, d, m, k, device):
        super().__init__()
        self.k = k
        # Kaiming-uniform-like encoder; decoder = encoder transpose with unit rows (SPEC §1).
        bound = 1.0 / math.sqrt(d)
        w_enc = torch.empty(d, m, device=device).uniform_(-bound, bound)
        self.W_enc = torch.nn.Parameter(w_enc)                              # [d, m]
        self.b_enc = torch.nn.Parameter(torch.zeros(m, device=device))      # [m]
        w_dec = w_enc.t().clone()
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w_dec)                              # [m, d]
        self.b_dec = torch.nn.Parameter(torch.zeros(d, device=device))      # [d]

    def forward(self, x):
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc                   # [N, m]
        top = torch.topk(pre, self.k, dim=-1, sorted=False)
        acts = torch.relu(top.values)                                      # [N, k]
        dense = torch.zeros_like(pre).scatter(-1, top.indices, acts)       # [N, m]
        return dense @ self.W_dec + self.b_dec                             # [N, d]

    @torch.no_grad()
    def remove_parallel_decoder_grad(self):
        g, w = self.W_dec.grad, self.W_dec
        if g is not None:
            g -= (g * w).sum(dim=1, keepdim=True) * w

    @torch.no_grad()
    def normalise_decoder(self):
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("torch_topk_sae: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 4
    threads = a.threads if a.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)

    pool = [torch.randn(a.batch, a.d, device=dev) for _ in range(a.pool)]
    mu = torch.stack([b.mean(0) for b in pool]).mean(0)                    # [d] dataset mean
    model = TopKSAE(a.d, a.m, a.k, dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    def autocast():
        # torch.autocast("cuda", enabled=False) still probes CUDA on a CPU-only build.
        if a.bf16_autocast:
            return torch.autocast(dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(i):
        x = pool[i % len(pool)]
        with autocast():
            x_hat = model(x)
            loss = (x_hat.float() - x).pow(2).sum() / (x - mu).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.remove_parallel_decoder_grad()
        opt.step()
        model.normalise_decoder()
        return loss

    seconds, loss = time_steps(step, a.warmup, a.steps, dev)

    result = {
        "peer": "torch",
        "torch_version": torch.__version__,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": threads if dev.type == "cpu" else None,
        "bf16_autocast": bool(a.bf16_autocast),
        # torch's FP32 matmuls stay FP32 unless this is true (the default is false)
        "allow_tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "cuda_version": torch.version.cuda,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
        "d": a.d,
        "m": a.m,
        "k": a.k,
        "batch": a.batch,
        "warmup": a.warmup,
        "steps": a.steps,
        "seconds": seconds,
        "seconds_per_step": seconds / a.steps,
        "tokens_per_second": a.batch * a.steps / seconds,
        "final_nmse": float(loss.detach()),
    }
    emit_result(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
