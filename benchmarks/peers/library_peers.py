#!/usr/bin/env python3
"""The training steps of the libraries researchers use, timed on random data (issue 17):

  --library sparsify   EleutherAI sparsify's SparseCoder (its fused encoder and sparse decoder)
                       with the step of its Trainer: fvu + auxk_alpha·auxk_loss (dead latents
                       from a since-fired counter), backward, the gradient parallel to the decoder
                       rows removed, Adam, decoder rows renormalised.
  --library saelens    SAELens's TopKTrainingSAE with the step of its SAETrainer:
                       training_forward_pass (MSE + AuxK), backward, clip_grad_norm_(1.0), Adam,
                       and its since-fired counter.

Both run in float32 on the CPU with --threads torch threads (sparsify's Triton decoder is off:
SPARSIFY_DISABLE_TRITON=1, its own switch for CPUs). Needs the libraries: run it with the
interop venv's python (tests/interop_lib.sh makes it). Prints the result JSON (and --out).
"""
import argparse
import os
import sys

os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from peer_timing import emit_result, time_steps  # noqa: E402

DEAD_TOKENS = 10_000_000  # sparsify's default: a latent silent for 10M tokens is dead


def sparsify_step(a, pool, dev):
    import sparsify
    from sparsify import SparseCoder, SparseCoderConfig
    sae = SparseCoder(a.d, SparseCoderConfig(num_latents=a.m, k=a.k), device=dev, dtype=torch.float32)
    opt = torch.optim.Adam(sae.parameters(), lr=a.lr)
    since_fired = torch.zeros(a.m, dtype=torch.long, device=dev)

    def step(i):
        x = pool[i % len(pool)]
        out = sae(x, dead_mask=since_fired > DEAD_TOKENS // a.batch)
        loss = out.fvu + 1 / 32 * out.auxk_loss
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sae.set_decoder_norm_to_unit_norm()
        with torch.no_grad():
            fired = torch.zeros(a.m, dtype=torch.bool, device=dev)
            fired[out.latent_indices.flatten()] = True
            since_fired.add_(1)
            since_fired[fired] = 0
        return out.fvu

    return step, getattr(sparsify, "__version__", None) or _dist_version("eai-sparsify")


def saelens_step(a, pool, dev):
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=a.d, d_sae=a.m, k=a.k, dtype="float32",
                                                device=str(dev)))
    opt = torch.optim.Adam(sae.parameters(), lr=a.lr)
    since_fired = torch.zeros(a.m, device=dev)

    def step(i):
        x = pool[i % len(pool)]
        out = sae.training_forward_pass(step_input=TrainStepInput(
            sae_in=x, coefficients={}, dead_neuron_mask=since_fired > DEAD_TOKENS // a.batch,
            n_training_steps=i, is_logging_step=False))
        with torch.no_grad():
            did_fire = out.feature_acts.bool().float().sum(-2).bool()
            if did_fire.is_sparse:
                did_fire = did_fire.to_dense()
            since_fired.add_(1)
            since_fired[did_fire] = 0
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        return out.loss

    return step, _dist_version("sae-lens")


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--library", choices=["sparsify", "saelens"], required=True)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--m", type=int, default=512)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=100, help="timed steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all cores)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--pool", type=int, default=4, help="distinct random batches, reused in turn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    threads = a.threads if a.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)
    dev = torch.device("cpu")
    pool = [torch.randn(a.batch, a.d, device=dev) for _ in range(a.pool)]
    make = sparsify_step if a.library == "sparsify" else saelens_step
    step, lib_version = make(a, pool, dev)
    seconds, loss = time_steps(step, a.warmup, a.steps, dev)
    emit_result({
        "peer": a.library, "library_version": lib_version, "torch_version": torch.__version__,
        "device": "cpu", "threads": threads, "d": a.d, "m": a.m, "k": a.k, "batch": a.batch,
        "warmup": a.warmup, "steps": a.steps, "seconds": seconds,
        "seconds_per_step": seconds / a.steps, "tokens_per_second": a.batch * a.steps / seconds,
        "final_loss": float(loss.detach()),
    }, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
