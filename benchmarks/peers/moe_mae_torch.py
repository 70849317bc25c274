#!/usr/bin/python3
"""SPEC §7's MoE-MAE written in plain PyTorch: the peer saec's MoE-MAE is checked against
(parity: loss, every gradient, a loss curve) and timed against (the training step).

The model is written as functions over a dict of parameters in saec's layout (every Linear's
weight stored [in, out], biases [1, out]; host/model/moe_mae_layout.c), so saec's weights and
gradients load and compare without transposes. saec's random choices (patch masks, router
noise, dropout masks) are counter-based hashes (include/saec/hash.h), ported here bit-exactly
with numpy uint64 arithmetic, so both sides draw the same numbers for the same (seed, step,
sample). One training step, for a batch of B images [7, 40, 40] and metadata [4]:

    z = (img - mean_c) / std_c; patches [B, 100, 112] (4×4, channel-major (c, y, x))
    tokens = [week, hour, lat, lon, CLS, patches @ W_pe + b_pe] + pos_embed      [B, 105, 144]
    keep 25 patches per sample (the smallest hash uniforms) → 30 tokens               [B, 30, 144]
    15 blocks: x += Attn(LN1 x); x += MoE(LN2 x)  (GQA 8 heads / 4 KV groups; noisy top-2
        router, SwiGLU experts with per-expert W_e and shared V, W2, dropout 0.1)
    enc.norm; dec.embed → decoder grid [B, 105, 108] (mask tokens for the hidden patches)
    2 decoder blocks; dec.norm; dec.head on the patch tokens → pred [B, 100, 112]
    loss = masked + 0.1·visible + 0.5·Σ(encoder blocks' CV balance losses)

Modes:
    --selftest            hash values against C reference values, parameter counts, a float64
                          gradcheck of a tiny configuration
    --grad BUNDLE         loss terms and every gradient against saec's (fp32, 1e-4 relative)
    --curve BUNDLE        trains the bundle's steps with AdamW; each loss within 1% of saec's
    --bench               times the training step (forward, backward, AdamW); JSON on stdout
    --write-grad-bundle OUT / --write-curve-bundle OUT
                          write bundles of the layouts saec writes, from this script's own
                          model computed in float64 (tests --grad/--curve without saec)

Bundles are safetensors files (see the bundle functions below for their keys). Exit codes:
0 success, 1 a check failed, 2 usage, 3 a bad bundle. Run with Debian's interpreter
(/usr/bin/python3) and Debian's python3-torch and python3-numpy.
"""
import argparse
import contextlib
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from peer_timing import emit_result, time_steps

EXIT_FAIL, EXIT_USAGE, EXIT_DATA = 1, 2, 3


class PeerError(Exception):
    """A failure with an exit code and a hint, printed as one line by main()."""

    def __init__(self, code, message, hint):
        super().__init__(message)
        self.code, self.hint = code, hint


# ----------------------------------------------------------------------------- configuration

class Config:
    """The model's hyper-parameters; default() is SPEC §7's, tiny() a small one for gradcheck."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @staticmethod
    def default():
        return Config(
            bands=7, image=40, patch=4, meta_tokens=4, top_k=2, mask_ratio=0.75, dropout=0.1,
            balance_weight=0.01, visible_weight=0.1, aux_weight=0.5, ln_eps=1e-5,
            enc_dim=144, enc_depth=15, enc_heads=8, enc_groups=4, head_dim=18,
            enc_experts=[3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5],
            enc_hidden=[int(144 - 72 * i / 14) for i in range(15)],
            dec_dim=108, dec_depth=2, dec_heads=6, dec_groups=3,
            dec_experts=[3, 3], dec_hidden=[54, 54])

    @staticmethod
    def tiny():
        """SPEC §7's model shrunk (constants kept): 2 bands of 8×8 in 2×2 patches, 2 + 1 blocks."""
        return Config(**dict(Config.default().__dict__,
                             bands=2, image=8, patch=2, enc_dim=12, enc_depth=2, enc_heads=4,
                             enc_groups=2, head_dim=3, enc_experts=[3, 4], enc_hidden=[6, 5],
                             dec_dim=9, dec_depth=1, dec_heads=3, dec_groups=1, dec_experts=[3],
                             dec_hidden=[4]))

    @property
    def patches(self):
        return (self.image // self.patch) ** 2                  # 100

    @property
    def patch_values(self):
        return self.bands * self.patch * self.patch              # 112

    @property
    def prefix(self):
        return self.meta_tokens + 1                              # metadata tokens and CLS: 5

    @property
    def tokens(self):
        return self.prefix + self.patches                        # 105

    @property
    def kept(self):
        return int(round(self.patches * (1.0 - self.mask_ratio)))  # 25


META_NAMES = ["week", "hour", "lat", "lon"]
REFERENCE_TOTAL, REFERENCE_ENCODER = 2_537_562, 2_366_798


def layout(cfg):
    """Every parameter in saec's arena order: (name, shape, init, fan_in, in_encoder)."""
    out = []

    def linear(prefix, n_in, n_out, enc):
        out.append((prefix + ".weight", (n_in, n_out), "linear", n_in, enc))
        out.append((prefix + ".bias", (1, n_out), "linear_bias", n_in, enc))

    def layernorm(prefix, dim, enc):
        out.append((prefix + ".weight", (1, dim), "ones", 0, enc))
        out.append((prefix + ".bias", (1, dim), "zeros", 0, enc))

    def block(stack, i, dim, heads, groups, experts, hidden, enc):
        p = "%s.%d" % (stack, i)
        layernorm(p + ".ln1", dim, enc)
        linear(p + ".attn.q", dim, heads * cfg.head_dim, enc)
        linear(p + ".attn.k", dim, groups * cfg.head_dim, enc)
        linear(p + ".attn.v", dim, groups * cfg.head_dim, enc)
        linear(p + ".attn.out", heads * cfg.head_dim, dim, enc)
        layernorm(p + ".ln2", dim, enc)
        linear(p + ".router.gate", dim, experts, enc)
        linear(p + ".router.noise", dim, experts, enc)
        out.append((p + ".experts.weight", (experts * dim, hidden), "linear", dim, enc))
        out.append((p + ".experts.bias", (experts, hidden), "linear_bias", dim, enc))
        linear(p + ".moe.v", dim, hidden, enc)
        linear(p + ".moe.w2", hidden, dim, enc)

    E, Dd = cfg.enc_dim, cfg.dec_dim
    linear("enc.patch_embed", cfg.patch_values, E, True)
    for m in range(cfg.meta_tokens):
        linear("enc.meta." + META_NAMES[m], 2, E, True)
    out.append(("enc.cls", (1, E), "trunc_normal", 0, True))
    out.append(("enc.pos_embed", (cfg.tokens, E), "trunc_normal", 0, True))
    for i in range(cfg.enc_depth):
        block("enc", i, E, cfg.enc_heads, cfg.enc_groups, cfg.enc_experts[i], cfg.enc_hidden[i], True)
    layernorm("enc.norm", E, True)
    linear("dec.embed", E, Dd, False)
    out.append(("dec.mask_token", (1, Dd), "trunc_normal", 0, False))
    out.append(("dec.pos_embed", (cfg.patches, Dd), "trunc_normal", 0, False))
    for i in range(cfg.dec_depth):
        block("dec", i, Dd, cfg.dec_heads, cfg.dec_groups, cfg.dec_experts[i], cfg.dec_hidden[i], False)
    layernorm("dec.norm", Dd, False)
    linear("dec.head", Dd, cfg.patch_values, False)
    return out


def param_counts(cfg):
    """(all parameters, encoder parameters)."""
    total = enc = 0
    for _, shape, _, _, in_enc in layout(cfg):
        n = shape[0] * shape[1]
        total += n
        enc += n if in_enc else 0
    return total, enc


def init_params(cfg, seed, dtype=torch.float32, device="cpu"):
    """The layout's initialisation with torch's generator: PyTorch's Linear default (uniform
    ±1/√fan_in for weight and bias), truncated normal std 0.02, LayerNorm ones/zeros."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape, init, fan_in, _ in layout(cfg):
        if init in ("linear", "linear_bias"):
            bound = 1.0 / math.sqrt(fan_in)
            t = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        elif init == "trunc_normal":
            t = (torch.randn(shape, generator=gen, dtype=torch.float64) * 0.02).clamp_(-0.04, 0.04)
        elif init == "ones":
            t = torch.ones(shape, dtype=torch.float64)
        else:
            t = torch.zeros(shape, dtype=torch.float64)
        params[name] = t.to(dtype=dtype, device=device).requires_grad_(True)
    return params


# ----------------------------------------------------------------------------- saec's hashes

U64 = np.uint64
GOLDEN, MIX1, MIX2 = U64(0x9E3779B97F4A7C15), U64(0xBF58476D1CE4E5B9), U64(0x94D049BB133111EB)
SEED_SALT, COUNTER_MUL = U64(0x5AE5AE5AE5AE5AE5), U64(0xD1342543DE82EF95)
STREAM_PATCH_MASK, STREAM_ROUTER_NOISE, STREAM_DROPOUT = 65, 66, 67


def mix64(x):
    """saec_mix64 (splitmix64's finaliser) on a uint64 array; arithmetic wraps mod 2^64."""
    x = np.asarray(x, dtype=U64)
    with np.errstate(over="ignore"):
        x = x + GOLDEN
        x = (x ^ (x >> U64(30))) * MIX1
        x = (x ^ (x >> U64(27))) * MIX2
        return x ^ (x >> U64(31))


def hash_uniform(seed, stream, counter):
    """saec_hash_uniform for a uint64 array of counters: float32 in [0, 1) with 24 bits."""
    key = mix64(U64(seed) ^ SEED_SALT) ^ mix64(U64(stream))
    c = np.asarray(counter, dtype=U64)
    with np.errstate(over="ignore"):
        h = mix64(key ^ mix64(c * COUNTER_MUL + U64(1)))
    return (h >> U64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def hash_normal(seed, stream, counter):
    """saec_hash_normal: Box-Muller in double from the uniforms at counter and counter + 1,
    rounded to float32 once."""
    c = np.asarray(counter, dtype=U64)
    u1 = 1.0 - hash_uniform(seed, stream, c).astype(np.float64)
    u2 = hash_uniform(seed, stream, c + U64(1)).astype(np.float64)
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)).astype(np.float32)


def block_base(step, block):
    """The counter base of a MoE block at a step: (s << 40) + (blk << 34)."""
    return (U64(step) << U64(40)) + (U64(block) << U64(34))


# ----------------------------------------------------------------------------- random choices

class StepRandom:
    """One step's random choices as tensors: keep [B, K] (kept patch indices, ascending), and per
    MoE block (encoder 0..depth-1, then decoder) noise [T, E] and dropout scale [2T, D]
    (0 or 1/(1-p); pair p = t·2 + slot). None where a choice is off (inference)."""

    def __init__(self, keep, noise, dropout):
        self.keep, self.noise, self.dropout = keep, noise, dropout

    @staticmethod
    def from_hash(cfg, seed, step, first_sample, batch, device, dtype):
        """saec's choices: counter-based hashes of (seed, step, global sample g, token, ...)."""
        seed, s = int(seed), int(step)
        g = np.arange(first_sample, first_sample + batch, dtype=U64)                    # [B]
        q = np.arange(cfg.patches, dtype=U64)
        u = hash_uniform(seed, STREAM_PATCH_MASK,
                         (U64(s) << U64(40)) + g[:, None] * U64(cfg.patches) + q[None, :])
        # the K smallest, ties to the lower q (stable sort), then in ascending q order
        keep = np.sort(np.argsort(u, axis=1, kind="stable")[:, :cfg.kept], axis=1)      # [B, K]
        noise, dropout = [], []
        keep_scale = np.float32(1.0 / (1.0 - cfg.dropout))
        stacks = [(cfg.prefix + cfg.kept, cfg.enc_dim, cfg.enc_experts),
                  (cfg.tokens, cfg.dec_dim, cfg.dec_experts)]
        blk = 0
        for seq, dim, experts in stacks:
            # token t = g·seq + j for the batch's samples, contiguous in g
            t = np.arange(first_sample * seq, (first_sample + batch) * seq, dtype=U64)  # [T]
            for E in experts:
                base = block_base(s, blk)
                e = np.arange(E, dtype=U64)
                z = hash_normal(seed, STREAM_ROUTER_NOISE,
                                base + U64(2) * (t[:, None] * U64(E) + e[None, :]))    # [T, E]
                pair = (t[:, None] * U64(2) + np.arange(2, dtype=U64)[None, :]).reshape(-1)
                c = np.arange(dim, dtype=U64)
                u = hash_uniform(seed, STREAM_DROPOUT,
                                 base + pair[:, None] * U64(dim) + c[None, :])          # [2T, D]
                d = np.where(u >= np.float32(cfg.dropout), keep_scale, np.float32(0.0))
                noise.append(torch.from_numpy(z).to(device=device, dtype=dtype))
                dropout.append(torch.from_numpy(d.astype(np.float32)).to(device=device, dtype=dtype))
                blk += 1
        return StepRandom(torch.from_numpy(keep).to(device), noise, dropout)

    @staticmethod
    def from_torch(cfg, batch, device, generator=None):
        """The same kinds of choices from torch's own generator, as a PyTorch user draws them
        (for the benchmark: the numpy hashes would dominate a PyTorch step's time)."""
        dev = torch.device(device)
        u = torch.rand(batch, cfg.patches, device=dev, generator=generator)
        keep = torch.sort(torch.argsort(u, dim=1)[:, :cfg.kept], dim=1).values
        noise, dropout = [], []
        keep_scale = 1.0 / (1.0 - cfg.dropout)
        stacks = [(cfg.prefix + cfg.kept, cfg.enc_dim, cfg.enc_experts),
                  (cfg.tokens, cfg.dec_dim, cfg.dec_experts)]
        for seq, dim, experts in stacks:
            T = batch * seq
            for E in experts:
                noise.append(torch.randn(T, E, device=dev, generator=generator))
                r = torch.rand(2 * T, dim, device=dev, generator=generator)
                dropout.append((r >= cfg.dropout).float() * keep_scale)
        return StepRandom(keep, noise, dropout)


# ----------------------------------------------------------------------------- the model

def patchify(z, p):
    """z [B, C, H, W] → [B, (H/p)·(W/p), C·p·p]: patch q = py·(W/p) + px, values (c, y, x)."""
    B, C, H, W = z.shape
    z = z.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return z.reshape(B, (H // p) * (W // p), C * p * p)


def metadata_inputs(metadata):
    """metadata [B, 4] (week, hour, lat°, lon°; NaN = missing) → (sin, cos) inputs [4, B, 2]
    in float64; a missing value gives (0, 0), so its token is the Linear's bias."""
    m = np.asarray(metadata, dtype=np.float64)
    angle = np.stack([2 * math.pi * m[:, 0] / 52, 2 * math.pi * m[:, 1] / 24,
                      m[:, 2] * math.pi / 180, m[:, 3] * math.pi / 180])           # [4, B]
    sc = np.stack([np.sin(angle), np.cos(angle)], axis=-1)                          # [4, B, 2]
    return np.where(np.isnan(angle)[..., None], 0.0, sc)


def layer_norm(x, P, prefix, eps):
    return F.layer_norm(x, (x.shape[-1],), P[prefix + ".weight"].reshape(-1),
                        P[prefix + ".bias"].reshape(-1), eps)


def attention(xn, P, prefix, heads, groups, head_dim):
    """Grouped-query attention, no mask: query head h reads KV group h mod groups."""
    B, T, _ = xn.shape
    q = (xn @ P[prefix + ".q.weight"] + P[prefix + ".q.bias"]).view(B, T, heads, head_dim)
    k = (xn @ P[prefix + ".k.weight"] + P[prefix + ".k.bias"]).view(B, T, groups, head_dim)
    v = (xn @ P[prefix + ".v.weight"] + P[prefix + ".v.bias"]).view(B, T, groups, head_dim)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)               # [B, ·, T, hd]
    k = k.repeat(1, heads // groups, 1, 1)                                          # [B, h, T, hd]
    v = v.repeat(1, heads // groups, 1, 1)
    scale = float(np.float32(1.0 / math.sqrt(head_dim)))
    a = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)                     # [B, h, T, T]
    o = (a @ v).transpose(1, 2).reshape(B, T, heads * head_dim)                     # [B, T, h·hd]
    return o @ P[prefix + ".out.weight"] + P[prefix + ".out.bias"]


def cv(v):
    """Coefficient of variation: population std / (mean + 1e-6)."""
    return v.std(unbiased=False) / (v.mean() + 1e-6)


def moe(xn, P, prefix, experts, top_k, noise, dropout, balance_weight):
    """Noisy top-k MoE with SwiGLU experts (W_e per expert, V and W2 shared); xn [T, D] →
    (Σ_slots gate·dropout(y) [T, D], balance loss, load per expert [E])."""
    T, D = xn.shape
    clean = xn @ P[prefix + ".router.gate.weight"] + P[prefix + ".router.gate.bias"]   # [T, E]
    raw = xn @ P[prefix + ".router.noise.weight"] + P[prefix + ".router.noise.bias"]
    noise_std = F.softplus(raw)
    H = clean if noise is None else clean + noise * noise_std                         # [T, E]
    # top-k largest first, ties to the lower expert index (stable sort)
    vals, idx = torch.sort(H, dim=-1, descending=True, stable=True)                 # [T, E]
    gates = torch.softmax(vals[:, :top_k], dim=-1)                                  # [T, k]
    importance = torch.zeros(experts, dtype=gates.dtype, device=gates.device)
    importance = importance.index_add(0, idx[:, :top_k].reshape(-1), gates.reshape(-1))
    if noise is None:  # inference: load = tokens routed to each expert
        load = torch.bincount(idx[:, :top_k].reshape(-1), minlength=experts).to(gates.dtype)
    else:
        # ψ_e = l_k if H_e > l_k; l_{k+1} if H_e <= l_{k+1}; else H_e (SPEC §7)
        lk, lk1 = vals[:, top_k - 1:top_k], vals[:, top_k:top_k + 1]                   # [T, 1]
        psi = torch.where(H > lk, lk, torch.where(H <= lk1, lk1, H))
        x = (clean - psi) / noise_std
        load = (0.5 * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))).sum(0)         # [E]
    balance = balance_weight * cv(importance) + balance_weight * cv(load)

    # dispatch the T·k (token, slot) pairs, pair p = t·k + slot, expert by expert
    eid = idx[:, :top_k].reshape(-1)                                                # [T·k]
    order = torch.argsort(eid, stable=True)
    counts = torch.bincount(eid, minlength=experts).tolist()
    tok_sorted = torch.div(order, top_k, rounding_mode="floor")
    x_sorted = xn[tok_sorted]                                                       # [T·k, D]
    W, b = P[prefix + ".experts.weight"], P[prefix + ".experts.bias"]               # [E·D, H], [E, H]
    pieces, start = [], 0
    for e, n in enumerate(counts):
        if n:
            pieces.append(x_sorted[start:start + n] @ W[e * D:(e + 1) * D] + b[e])
        start += n
    a_sorted = torch.cat(pieces, 0)                                                 # [T·k, H]
    a = torch.empty_like(a_sorted).index_copy(0, order, a_sorted)                   # pair order
    v = xn @ P[prefix + ".moe.v.weight"] + P[prefix + ".moe.v.bias"]                # [T, H]
    h = F.silu(a) * v.repeat_interleave(top_k, dim=0)                              # [T·k, H]
    y = h @ P[prefix + ".moe.w2.weight"] + P[prefix + ".moe.w2.bias"]               # [T·k, D]
    if dropout is not None:
        y = y * dropout
    out = (y.view(T, top_k, D) * gates.unsqueeze(-1).to(y.dtype)).sum(1)            # [T, D]
    return out, balance, load.detach()


def stack_block(x, P, prefix, cfg, heads, groups, experts, noise, dropout):
    """One pre-LN block: x += Attn(LN1 x); x += MoE(LN2 x). x [B, S, D]."""
    B, S, D = x.shape
    x = x + attention(layer_norm(x, P, prefix + ".ln1", cfg.ln_eps), P, prefix + ".attn",
                      heads, groups, cfg.head_dim)
    xn = layer_norm(x, P, prefix + ".ln2", cfg.ln_eps).reshape(B * S, D)
    y, balance, load = moe(xn, P, prefix, experts, cfg.top_k, noise, dropout, cfg.balance_weight)
    return x + y.view(B, S, D).to(x.dtype), balance, load


def forward(P, cfg, images, metadata, band_mean, band_std, rnd):
    """The training loss for one batch. images [B, C, H, W] raw, metadata [B, 4] numpy,
    band_mean/std [C]; rnd a StepRandom. Returns a dict of loss terms (tensors) and loads."""
    B = images.shape[0]
    dev = images.device
    z = (images - band_mean.view(1, -1, 1, 1)) / band_std.view(1, -1, 1, 1)
    target = patchify(z, cfg.patch)                                                 # [B, P, 112]
    ptok = target @ P["enc.patch_embed.weight"] + P["enc.patch_embed.bias"]         # [B, P, E]
    meta_in = torch.from_numpy(metadata_inputs(metadata)).to(device=dev, dtype=images.dtype)
    meta = [meta_in[m] @ P["enc.meta.%s.weight" % META_NAMES[m]] + P["enc.meta.%s.bias" % META_NAMES[m]]
            for m in range(cfg.meta_tokens)]                                        # each [B, E]
    cls = P["enc.cls"].expand(B, -1)
    seq = torch.cat([torch.stack(meta + [cls.to(meta[0].dtype)], 1), ptok.to(meta[0].dtype)], 1)
    seq = seq + P["enc.pos_embed"]                                                  # [B, 105, E]
    keep = rnd.keep                                                                 # [B, K]
    prefix = torch.arange(cfg.prefix, device=dev).expand(B, -1)
    x = torch.gather(seq, 1, torch.cat([prefix, keep + cfg.prefix], 1)
                     .unsqueeze(-1).expand(-1, -1, seq.shape[-1]))                  # [B, 30, E]

    balances, loads = [], []
    for i in range(cfg.enc_depth):
        x, bal, load = stack_block(x, P, "enc.%d" % i, cfg, cfg.enc_heads, cfg.enc_groups,
                                   cfg.enc_experts[i], rnd.noise[i], rnd.dropout[i])
        balances.append(bal)
        loads.append(load)
    x = layer_norm(x, P, "enc.norm", cfg.ln_eps)

    d = x @ P["dec.embed.weight"] + P["dec.embed.bias"]                             # [B, 30, Dd]
    Dd = d.shape[-1]
    grid = P["dec.mask_token"].to(d.dtype).expand(B, cfg.patches, Dd)
    grid = grid.scatter(1, keep.unsqueeze(-1).expand(-1, -1, Dd), d[:, cfg.prefix:])
    grid = grid + P["dec.pos_embed"]                                                # [B, P, Dd]
    y = torch.cat([d[:, :cfg.prefix], grid.to(d.dtype)], 1)                         # [B, 105, Dd]
    for i in range(cfg.dec_depth):
        blk = cfg.enc_depth + i
        y, _, load = stack_block(y, P, "dec.%d" % i, cfg, cfg.dec_heads, cfg.dec_groups,
                                 cfg.dec_experts[i], rnd.noise[blk], rnd.dropout[blk])
        loads.append(load)
    y = layer_norm(y, P, "dec.norm", cfg.ln_eps)
    pred = y[:, cfg.prefix:] @ P["dec.head.weight"] + P["dec.head.bias"]            # [B, P, 112]

    err = (pred.float() if pred.dtype != target.dtype else pred) - target
    err = err.pow(2).sum(-1)                                                        # [B, P]
    kept = torch.zeros(B, cfg.patches, dtype=torch.bool, device=dev).scatter(1, keep, True)
    visible = err[kept].sum() / kept.sum()
    masked = err[~kept].sum() / (~kept).sum()
    balance = torch.stack(balances).sum()
    total = masked + cfg.visible_weight * visible + cfg.aux_weight * balance
    return {"total": total, "masked": masked, "visible": visible, "balance": balance,
            "loads": loads}


LOSS_TERMS = ["total", "masked", "visible", "balance"]


# ----------------------------------------------------------------------------- safetensors

DTYPES = {"F32": (np.float32, 4), "F64": (np.float64, 8), "I64": (np.int64, 8)}


def read_safetensors(path):
    """(tensors {name: numpy array}, metadata {str: str}) of a safetensors file."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise PeerError(EXIT_DATA, "%s: cannot read: %s" % (path, e.strerror),
                        "give a bundle saec wrote (safetensors)")
    bad = lambda why: PeerError(EXIT_DATA, "%s: not a safetensors file: %s" % (path, why),
                                "give a bundle saec wrote (safetensors)")
    if len(blob) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise bad("header length %d past the end of the file" % n)
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise bad("header is not JSON (%s)" % e)
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        try:
            dtype, size = DTYPES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad("tensor '%s': dtype (F32/F64/I64), shape or data_offsets missing or "
                      "unsupported" % name)
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= begin <= end <= len(data)) or end - begin != count * size:
            raise bad("tensor '%s': data_offsets [%d, %d] do not hold shape %s of %s"
                      % (name, begin, end, shape, info["dtype"]))
        tensors[name] = np.frombuffer(data[begin:end], dtype=np.dtype(dtype).newbyteorder("<")
                                      ).reshape(shape).astype(dtype)
    return tensors, {str(k): str(v) for k, v in meta.items()}


def write_safetensors(path, tensors, meta):
    """tensors {name: numpy array (float32, float64 or int64)}; written to a temporary, renamed."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
    header, chunks, offset = {"__metadata__": {k: str(v) for k, v in meta.items()}}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def need(tensors, path, name, shape=None, dtype=None):
    """The bundle's tensor `name`, checked for shape (a tuple, None entries free) and dtype."""
    if name not in tensors:
        raise PeerError(EXIT_DATA, "%s: tensor '%s' is missing" % (path, name),
                        "the bundle must hold the keys listed in moe_mae_torch.py's docstring")
    t = tensors[name]
    if shape is not None and (len(t.shape) != len(shape) or
                              any(s is not None and s != n for s, n in zip(shape, t.shape))):
        raise PeerError(EXIT_DATA, "%s: tensor '%s' has shape %s, expected %s"
                        % (path, name, list(t.shape), list(shape)), "check the writer's layout")
    if dtype is not None and t.dtype != dtype:
        raise PeerError(EXIT_DATA, "%s: tensor '%s' is %s, expected %s"
                        % (path, name, t.dtype, np.dtype(dtype)), "check the writer's dtypes")
    return t


def need_meta(meta, path, key, kind):
    if key not in meta:
        raise PeerError(EXIT_DATA, "%s: __metadata__ key '%s' is missing" % (path, key),
                        "the bundle's __metadata__ must hold it")
    try:
        return kind(meta[key])
    except ValueError:
        raise PeerError(EXIT_DATA, "%s: __metadata__ '%s' = '%s' is not a %s"
                        % (path, key, meta[key], kind.__name__), "write it as a number")


def load_params(cfg, tensors, path, dtype, device, prefix=""):
    """The model's parameters from a bundle (shape as the layout, or the same values with a
    bias stored as [out] instead of [1, out])."""
    params = {}
    for name, shape, _, _, _ in layout(cfg):
        t = need(tensors, path, prefix + name, dtype=np.float32)
        if t.size != shape[0] * shape[1] or (t.shape != shape and t.shape != (shape[1],)):
            raise PeerError(EXIT_DATA, "%s: tensor '%s' has shape %s, expected %s"
                            % (path, prefix + name, list(t.shape), list(shape)),
                            "saec's layout: host/model/moe_mae_layout.c")
        params[name] = torch.from_numpy(t.reshape(shape).copy()).to(device=device, dtype=dtype)
        params[name].requires_grad_(True)
    return params


def load_inputs(tensors, path, cfg, rows=None):
    """images [N, C, H, W] float32, metadata [N, 4] float32, band mean and std [C]."""
    C, S = cfg.bands, cfg.image
    images = need(tensors, path, "input.images", (rows, C, S, S), np.float32)
    metadata = need(tensors, path, "input.metadata", (images.shape[0], cfg.meta_tokens), np.float32)
    mean = need(tensors, path, "input.band_mean", (C,), np.float32)
    std = need(tensors, path, "input.band_std", (C,), np.float32)
    if not np.all(std > 0):
        raise PeerError(EXIT_DATA, "%s: input.band_std has a value <= 0" % path,
                        "the band statistics must have positive std")
    return images, metadata, mean, std


# ----------------------------------------------------------------------------- checks

def check_tensor(mine, theirs, rel=1e-4, floor=0.0):
    """Worst ratio |mine − theirs| / (rel·(|theirs| + mean |theirs| + floor)) over the elements
    (<= 1 passes), and the index where it happens."""
    mine = np.asarray(mine, dtype=np.float64).reshape(-1)
    theirs = np.asarray(theirs, dtype=np.float64).reshape(-1)
    tol = rel * (np.abs(theirs) + np.abs(theirs).mean() + floor) + 1e-30
    ratio = np.abs(mine - theirs) / tol
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    i = int(np.argmax(ratio))
    return float(ratio[i]), i


def setup_threads(threads):
    n = threads if threads and threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def open_bundle(path, a):
    """A bundle for --grad/--curve: (config, tensors, __metadata__, seed, the dtype to compute
    in); sets the thread count."""
    setup_threads(a.threads)
    tensors, meta = read_safetensors(path)
    seed = need_meta(meta, path, "seed", int)
    return Config.default(), tensors, meta, seed, torch.float64 if a.float64 else torch.float32


def run_grad(a):
    """--grad BUNDLE: loss terms and every gradient against saec's."""
    path = a.grad
    cfg, tensors, meta, seed, dtype = open_bundle(path, a)
    step = need_meta(meta, path, "step", int)
    first = need_meta(meta, path, "first_sample", int)
    images, metadata, mean, std = load_inputs(tensors, path, cfg)
    B = images.shape[0]
    expect = need(tensors, path, "expect.loss", (4,), np.float64)
    P = load_params(cfg, tensors, path, dtype, "cpu")
    rnd = StepRandom.from_hash(cfg, seed, step, first, B, "cpu", dtype)
    out = forward(P, cfg, torch.from_numpy(images).to(dtype), metadata,
                  torch.from_numpy(mean).to(dtype), torch.from_numpy(std).to(dtype), rnd)
    out["total"].backward()

    failures, worst_name, worst = [], None, -1.0
    print("moe_mae_torch --grad %s: B=%d seed=%d step=%d first_sample=%d (%s)"
          % (path, B, seed, step, first, "float64" if a.float64 else "float32"))
    for k, term in enumerate(LOSS_TERMS):
        mine, theirs = float(out[term]), float(expect[k])
        ok = abs(mine - theirs) <= a.rel * abs(theirs) + 1e-30
        print("  loss.%-8s torch %.9g  saec %.9g  rel %.3g%s" % (
            term, mine, theirs, abs(mine - theirs) / max(abs(theirs), 1e-30), "" if ok else "  FAIL"))
        if not ok:
            failures.append("loss." + term)
    for name, shape, _, _, _ in layout(cfg):
        theirs = need(tensors, path, "grad." + name, dtype=np.float32)
        if theirs.size != shape[0] * shape[1]:
            raise PeerError(EXIT_DATA, "%s: tensor 'grad.%s' has shape %s, expected %s"
                            % (path, name, list(theirs.shape), list(shape)),
                            "gradients have their parameter's shape")
        g = P[name].grad
        mine = np.zeros(shape) if g is None else g.detach().double().numpy()
        floor = 0.0
        if name.endswith(".attn.k.bias"):
            # exactly zero in exact arithmetic (a key bias adds the same ⟨q, b_k⟩ to every score
            # of a softmax row), so both sides hold rounding noise: measure it against the
            # scale of the same layer's key weight gradient instead
            floor = float(np.abs(need(tensors, path, "grad." + name[:-len("bias")] + "weight",
                                      dtype=np.float32)).mean())
        ratio, i = check_tensor(mine, theirs, a.rel, floor)
        if ratio > worst:
            worst, worst_name = ratio, name
        bad = ratio > 1.0
        if bad:
            failures.append("grad." + name)
        if bad or a.verbose:
            print("  grad.%-30s worst %.3g of tolerance at [%d]: torch %.9g saec %.9g%s" % (
                name, ratio, i, mine.reshape(-1)[i], theirs.reshape(-1)[i], "  FAIL" if bad else ""))
    n = len(layout(cfg))
    if failures:
        print("moe_mae_torch --grad: FAIL: %d of %d checks out of tolerance (%s%s)" % (
            len(failures), n + 4, ", ".join(failures[:8]), ", ..." if len(failures) > 8 else ""))
        return EXIT_FAIL
    print("moe_mae_torch --grad: OK: 4 loss terms and %d gradients within %g relative "
          "(worst: grad.%s at %.3g of tolerance)" % (n, a.rel, worst_name, worst))
    return 0


def make_adamw(params, meta, path, lr0):
    betas = (need_meta(meta, path, "beta1", float), need_meta(meta, path, "beta2", float))
    return torch.optim.AdamW(params, lr=lr0, betas=betas, eps=need_meta(meta, path, "eps", float),
                             weight_decay=need_meta(meta, path, "weight_decay", float))


def train_curve(cfg, P, meta, path, images, metadata, mean, std, lrs, dtype, seed, steps, batch):
    """Trains `steps` steps (AdamW after clipping the global gradient norm); the loss of each
    step before its update."""
    params = list(P.values())
    opt = make_adamw(params, meta, path, float(lrs[0]))
    max_norm = need_meta(meta, path, "max_grad_norm", float)
    mean_t, std_t = torch.from_numpy(mean).to(dtype), torch.from_numpy(std).to(dtype)
    losses = []
    for s in range(steps):
        rows = slice(s * batch, (s + 1) * batch)
        rnd = StepRandom.from_hash(cfg, seed, s, 0, batch, "cpu", dtype)
        out = forward(P, cfg, torch.from_numpy(images[rows]).to(dtype), metadata[rows],
                      mean_t, std_t, rnd)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        for group in opt.param_groups:
            group["lr"] = float(lrs[s])
        opt.step()
        losses.append(float(out["total"]))
    return losses


def run_curve(a):
    """--curve BUNDLE: S training steps; each loss within 1% relative of saec's."""
    path = a.curve
    cfg, tensors, meta, seed, dtype = open_bundle(path, a)
    steps = need_meta(meta, path, "steps", int)
    batch = need_meta(meta, path, "batch", int)
    if steps < 1 or batch < 1:
        raise PeerError(EXIT_DATA, "%s: steps %d and batch %d must be positive" % (path, steps, batch),
                        "check the writer")
    images, metadata, mean, std = load_inputs(tensors, path, cfg, rows=steps * batch)
    lrs = need(tensors, path, "lr", (steps,), np.float64)
    expect = need(tensors, path, "expect.loss", (steps,), np.float64)
    P = load_params(cfg, tensors, path, dtype, "cpu")
    t0 = time.perf_counter()
    losses = train_curve(cfg, P, meta, path, images, metadata, mean, std, lrs, dtype, seed,
                         steps, batch)
    worst, worst_step, bad = 0.0, 0, []
    print("moe_mae_torch --curve %s: %d steps of batch %d, seed %d (%.1f s)"
          % (path, steps, batch, seed, time.perf_counter() - t0))
    print("  step  torch           saec            rel")
    for s in range(steps):
        rel = abs(losses[s] - expect[s]) / max(abs(expect[s]), 1e-30)
        if rel > worst:
            worst, worst_step = rel, s
        if rel > a.curve_rel:
            bad.append(s)
        if a.verbose or rel > a.curve_rel or s % max(1, steps // 10) == 0 or s == steps - 1:
            print("  %4d  %-14.8g  %-14.8g  %.3g%s" % (s, losses[s], expect[s], rel,
                                                       "  FAIL" if rel > a.curve_rel else ""))
    if bad:
        print("moe_mae_torch --curve: FAIL: %d of %d steps beyond %g relative (first at step %d, "
              "worst %.3g at step %d)" % (len(bad), steps, a.curve_rel, bad[0], worst, worst_step))
        return EXIT_FAIL
    print("moe_mae_torch --curve: OK: %d steps within %g relative (worst %.3g at step %d)"
          % (steps, a.curve_rel, worst, worst_step))
    return 0


# ----------------------------------------------------------------------------- bundle writers

def random_inputs(cfg, n, seed):
    """Raw images [n, C, H, W] (band-dependent offsets and scales), metadata [n, 4] with some
    NaN, and the band statistics, all float32 numpy."""
    rng = np.random.default_rng(seed)
    offset = rng.uniform(500, 3000, cfg.bands).astype(np.float32)
    scale = rng.uniform(100, 800, cfg.bands).astype(np.float32)
    images = (offset[None, :, None, None] + scale[None, :, None, None] *
              rng.standard_normal((n, cfg.bands, cfg.image, cfg.image))).astype(np.float32)
    meta = np.stack([rng.integers(1, 53, n), rng.integers(0, 24, n),
                     rng.uniform(-60, 70, n), rng.uniform(-180, 180, n)], 1).astype(np.float32)
    meta[rng.random((n, cfg.meta_tokens)) < 0.1] = np.nan
    mean = images.mean(axis=(0, 2, 3)).astype(np.float32)
    std = images.std(axis=(0, 2, 3)).astype(np.float32)
    return images, meta, mean, std


def params_to_numpy(P):
    return {n: t.detach().float().numpy().copy() for n, t in P.items()}


def run_write_grad_bundle(a):
    """A gradient bundle from this script's model, computed in float64 (fp32 parameters)."""
    cfg = Config.default()
    setup_threads(a.threads)
    P = init_params(cfg, a.seed, torch.float32)
    images, metadata, mean, std = random_inputs(cfg, a.batch, a.seed + 1)
    P64 = {n: t.detach().double().requires_grad_(True) for n, t in P.items()}
    rnd = StepRandom.from_hash(cfg, a.seed, a.step, a.first_sample, a.batch, "cpu", torch.float64)
    out = forward(P64, cfg, torch.from_numpy(images).double(), metadata,
                  torch.from_numpy(mean).double(), torch.from_numpy(std).double(), rnd)
    out["total"].backward()
    tensors = params_to_numpy(P)
    tensors.update({"input.images": images, "input.metadata": metadata, "input.band_mean": mean,
                    "input.band_std": std,
                    "expect.loss": np.array([float(out[t]) for t in LOSS_TERMS], np.float64)})
    for n, t in P64.items():
        tensors["grad." + n] = t.grad.float().numpy()
    write_safetensors(a.write_grad_bundle, tensors,
                      {"seed": a.seed, "step": a.step, "first_sample": a.first_sample})
    print("moe_mae_torch: wrote %s (batch %d, loss %.9g)" % (a.write_grad_bundle, a.batch,
                                                             float(out["total"])))
    return 0


def run_write_curve_bundle(a):
    """A curve bundle from this script's model, trained in float64 from fp32 parameters."""
    cfg = Config.default()
    setup_threads(a.threads)
    P = init_params(cfg, a.seed, torch.float32)
    S, B = a.steps, a.batch
    images, metadata, mean, std = random_inputs(cfg, S * B, a.seed + 1)
    warm = max(1, S // 20)  # linear warm-up over 5%, then cosine to 0 (SPEC §7's schedule)
    lrs = np.array([a.lr * (s + 1) / warm if s < warm else
                    a.lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, S - warm)))
                    for s in range(S)], np.float64)
    meta = {"seed": a.seed, "steps": S, "batch": B, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.05, "max_grad_norm": 1.0}
    tensors = params_to_numpy(P)
    P64 = {n: t.detach().double().requires_grad_(True) for n, t in P.items()}
    losses = train_curve(cfg, P64, meta, "(writer)", images, metadata, mean, std, lrs,
                         torch.float64, a.seed, S, B)
    tensors.update({"input.images": images, "input.metadata": metadata, "input.band_mean": mean,
                    "input.band_std": std, "lr": lrs, "expect.loss": np.array(losses, np.float64)})
    write_safetensors(a.write_curve_bundle, tensors, meta)
    print("moe_mae_torch: wrote %s (%d steps of batch %d, loss %.6g → %.6g)"
          % (a.write_curve_bundle, S, B, losses[0], losses[-1]))
    return 0


# ----------------------------------------------------------------------------- benchmark

def run_bench(a):
    """Times the training step (forward, backward, clipping, AdamW) on random inputs."""
    cfg = Config.default()
    if a.device == "cuda" and not torch.cuda.is_available():
        raise PeerError(4, "--device cuda but this torch (%s) sees no CUDA device" % torch.__version__,
                        "run on a machine with a GPU and a CUDA build of torch")
    threads = setup_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(a.seed)
    P = init_params(cfg, a.seed, torch.float32, dev)
    params = list(P.values())
    opt = torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    # a few distinct batches reused: the step's cost, not a data pipeline's
    images, metadata, mean, std = random_inputs(cfg, a.pool * a.batch, a.seed + 1)
    pool = [(torch.from_numpy(images[i * a.batch:(i + 1) * a.batch]).to(dev),
             metadata[i * a.batch:(i + 1) * a.batch]) for i in range(a.pool)]
    mean_t, std_t = torch.from_numpy(mean).to(dev), torch.from_numpy(std).to(dev)
    gen = torch.Generator(device=dev).manual_seed(a.seed)

    def autocast():
        # torch.autocast("cuda", enabled=False) still probes CUDA on a CPU-only build.
        return torch.autocast(dev.type, dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()

    def step(i):
        images, metadata = pool[i % len(pool)]
        rnd = StepRandom.from_torch(cfg, a.batch, dev, gen)
        with autocast():
            out = forward(P, cfg, images, metadata, mean_t, std_t, rnd)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return out["total"]

    seconds, loss = time_steps(step, a.warmup, a.steps, dev)
    result = {
        "peer": "torch",
        "model": "moe-mae",
        "images_per_second": a.batch * a.steps / seconds,
        "batch": a.batch,
        "threads": threads if dev.type == "cpu" else None,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "bf16_autocast": bool(a.bf16),
        "warmup": a.warmup,
        "steps": a.steps,
        "seconds": seconds,
        "seconds_per_step": seconds / a.steps,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
        "final_loss": float(loss.detach()),
    }
    emit_result(result, a.out)
    return 0


# ----------------------------------------------------------------------------- self-test

# Printed by a C program that includes include/saec/hash.h (values with %.9g, exact for float).
MIX64_REFERENCE = [(0, 16294208416658607535), (1, 10451216379200822465),
                   (12345, 2454886589211414944), (0xFFFFFFFFFFFFFFFF, 16490336266968443936),
                   ((3 << 40) + (7 << 34) + 999, 5465652670127644163)]
HASH_REFERENCE = [  # seed, stream, counter, saec_hash_uniform, saec_hash_normal
    (0, 65, 0, 0.708382845, 0.816951931),
    (1, 65, 1, 0.0991891623, 0.455278605),
    (42, 65, (5 << 40) + 3 * 100 + 17, 0.031945169, 0.240248501),
    (42, 66, (2 << 40) + (14 << 34) + 2 * (1000 * 5 + 4), 0.781687617, -0.52816242),
    (7, 67, (1 << 40) + (16 << 34) + (12345 * 2 + 1) * 108 + 107, 0.204695284, -0.668071091),
    (0xDEADBEEFCAFEF00D, 66, 123456789, 0.441561997, -0.275578856)]
# Σ_k bits(float) · (k + 1) mod 2^64 over k < 10^6 of saec_hash_normal(3, 66, (9 << 40) + 2k)
# and of saec_hash_uniform(3, 67, k): every bit of a million draws.
BULK_REFERENCE = (13893163319240596309, 9871887360714050483)


def bit_checksum(values):
    bits = values.astype(np.float32).view(np.uint32).astype(U64)
    with np.errstate(over="ignore"):
        return int(np.sum(bits * np.arange(1, len(bits) + 1, dtype=U64), dtype=U64))


def selftest_hash():
    failures = []
    for x, want in MIX64_REFERENCE:
        got = int(mix64(np.array([x], dtype=U64))[0])
        if got != want:
            failures.append("saec_mix64(%d) = %d, C says %d" % (x, got, want))
    for seed, stream, counter, u_want, n_want in HASH_REFERENCE:
        c = np.array([counter], dtype=U64)
        u = hash_uniform(seed, stream, c)[0]
        n = hash_normal(seed, stream, c)[0]
        if u != np.float32(u_want) or n != np.float32(n_want):
            failures.append("hash(%d, %d, %d) = (%.9g, %.9g), C says (%.9g, %.9g)"
                            % (seed, stream, counter, u, n, u_want, n_want))
    k = np.arange(1_000_000, dtype=U64)
    bulk = (bit_checksum(hash_normal(3, 66, (U64(9) << U64(40)) + U64(2) * k)),
            bit_checksum(hash_uniform(3, 67, k)))
    if bulk != BULK_REFERENCE:
        failures.append("bulk checksums %s, C says %s" % (bulk, BULK_REFERENCE))
    return failures


def selftest_counts():
    total, enc = param_counts(Config.default())
    if (total, enc) != (REFERENCE_TOTAL, REFERENCE_ENCODER):
        return ["parameters %d (encoder %d), the reference has %d (encoder %d)"
                % (total, enc, REFERENCE_TOTAL, REFERENCE_ENCODER)]
    return []


def selftest_gradcheck():
    """float64 gradcheck of the whole tiny model's loss with respect to every parameter
    (fixed random choices, so the loss is smooth around the point)."""
    cfg = Config.tiny()
    P = init_params(cfg, 7, torch.float64)
    images, metadata, mean, std = random_inputs(cfg, 3, 8)
    rnd = StepRandom.from_hash(cfg, 5, 2, 4, 3, "cpu", torch.float64)
    names = list(P.keys())
    imgs, m_t, s_t = (torch.from_numpy(images).double(), torch.from_numpy(mean).double(),
                      torch.from_numpy(std).double())

    def loss(*tensors):
        return forward(dict(zip(names, tensors)), cfg, imgs, metadata, m_t, s_t, rnd)["total"]

    try:
        ok = torch.autograd.gradcheck(loss, tuple(P[n] for n in names), eps=1e-6, atol=1e-6,
                                      rtol=1e-4, fast_mode=True)
    except RuntimeError as e:
        return ["gradcheck of the tiny model: %s" % str(e).splitlines()[0]]
    return [] if ok else ["gradcheck of the tiny model failed"]


def selftest_masks():
    """The hash-drawn choices have the shapes and rates SPEC §7 asks for."""
    cfg = Config.default()
    r = StepRandom.from_hash(cfg, 11, 3, 1000, 4, "cpu", torch.float32)
    failures = []
    keep = r.keep.numpy()
    if keep.shape != (4, 25) or np.any(np.diff(keep, axis=1) <= 0):
        failures.append("keep is not 25 ascending distinct patches per sample")
    d = torch.cat([x.reshape(-1) for x in r.dropout])
    rate = float((d == 0).double().mean())
    if not 0.09 < rate < 0.11:
        failures.append("dropout rate %.4f, expected about 0.1" % rate)
    z = torch.cat([x.reshape(-1) for x in r.noise]).double()
    if abs(float(z.mean())) > 0.02 or abs(float(z.std()) - 1) > 0.02:
        failures.append("router noise mean %.3f std %.3f" % (float(z.mean()), float(z.std())))
    return failures


def run_selftest(a):
    setup_threads(a.threads)
    checks = [("hashes against C", selftest_hash), ("parameter counts", selftest_counts),
              ("random choices", selftest_masks), ("float64 gradcheck (tiny)", selftest_gradcheck)]
    failed = 0
    for label, fn in checks:
        t0 = time.perf_counter()
        problems = fn()
        print("  %-26s %s (%.1f s)" % (label, "OK" if not problems else "FAIL",
                                       time.perf_counter() - t0))
        for p in problems:
            print("    " + p)
        failed += bool(problems)
    if failed:
        print("moe_mae_torch --selftest: FAIL: %d of %d checks" % (failed, len(checks)))
        return EXIT_FAIL
    print("moe_mae_torch --selftest: OK: %d checks" % len(checks))
    return 0


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--selftest", action="store_true")
    mode.add_argument("--grad", metavar="BUNDLE")
    mode.add_argument("--curve", metavar="BUNDLE")
    mode.add_argument("--bench", action="store_true")
    mode.add_argument("--write-grad-bundle", metavar="OUT")
    mode.add_argument("--write-curve-bundle", metavar="OUT")
    p.add_argument("--batch", type=int, default=None,
                   help="images per step (--bench: 128; the writers: 4)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps (--bench: 10) or curve steps (--write-curve-bundle: 100)")
    p.add_argument("--warmup", type=int, default=2, help="--bench: untimed steps first")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all cores)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--bf16", action="store_true", help="--bench: torch.autocast(bfloat16)")
    p.add_argument("--pool", type=int, default=2, help="--bench: distinct random batches")
    p.add_argument("--out", default=None, help="--bench: write the result JSON here as well")
    p.add_argument("--seed", type=int, default=0, help="init, inputs and hashes (writers, bench)")
    p.add_argument("--step", type=int, default=0, help="--write-grad-bundle: the step s")
    p.add_argument("--first-sample", type=int, default=0,
                   help="--write-grad-bundle: global index of the batch's first sample")
    p.add_argument("--lr", type=float, default=3e-4, help="--write-curve-bundle: peak lr")
    p.add_argument("--rel", type=float, default=1e-4, help="--grad: relative tolerance")
    p.add_argument("--curve-rel", type=float, default=0.01, help="--curve: relative tolerance")
    p.add_argument("--float64", action="store_true",
                   help="--grad/--curve: compute in float64 (a diagnostic; the check is fp32)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every tensor and step")
    a = p.parse_args(argv)
    if a.batch is None:
        a.batch = 128 if a.bench else 4
    if a.steps is None:
        a.steps = 10 if a.bench else 100
    if min(a.batch, a.steps, a.pool) < 1 or a.warmup < 0 or a.step < 0 or a.first_sample < 0:
        p.error("--batch, --steps and --pool must be positive; --warmup, --step, --first-sample "
                "non-negative")
    if a.bf16 and not a.bench:
        p.error("--bf16 is for --bench")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if a.selftest:
            return run_selftest(a)
        if a.grad:
            return run_grad(a)
        if a.curve:
            return run_curve(a)
        if a.write_grad_bundle:
            return run_write_grad_bundle(a)
        if a.write_curve_bundle:
            return run_write_curve_bundle(a)
        return run_bench(a)
    except PeerError as e:
        print("moe_mae_torch: error: %s (hint: %s)" % (e, e.hint), file=sys.stderr)
        return e.code


if __name__ == "__main__":
    sys.exit(main())
