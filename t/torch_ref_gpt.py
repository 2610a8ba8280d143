#!/usr/bin/python3
"""Independent float64 PyTorch reference for the Transformer family.

Two members, as docs/science.md states them, under the lab's state_dict names:
  transformer       the lab's token GPT (§7.1; xuzhiqin1990/anchor_function_pub,
                    model/GPT.py) with the paper's optional causal conv
  continuous_aogpt  ContinuousAOGPT (§7.2; after scxue/AO-GPT-MDM)
Each model is a function of a dict name -> tensor, so gradcheck and strict
name/shape checks need no nn.Module. Checkpoints are F32; everything is
computed in float64 from those F32 values. Dropout is never applied (the
reference is the model in eval mode), whatever the config's "dropout" says.

Usage (Debian's /usr/bin/python3 with python3-torch; safetensors is read and
written by t/torch_ref.py's helpers):
  torch_ref_gpt.py make DIR     self-test, then the fixtures and DIR/README.md
  torch_ref_gpt.py verify DIR   recompute every DIR/NAME.ckpt.safetensors on its
                                batch, compare with NAME.expected.safetensors
                                (exit 0 when all agree to 1e-10 relative)
  torch_ref_gpt.py check CKPT BATCH OUT [RTOL]
                                recompute CKPT (e.g. written by the engine) on
                                BATCH, compare OUT (loss, logits or predictions,
                                grad.NAME); exit 0 when every tensor is within
                                RTOL (default 1e-4) of the reference's largest
                                value
  torch_ref_gpt.py batch OUT CKPT B L SEED
                                a random batch for CKPT's family
  torch_ref_gpt.py selftest [--full]
                                gradcheck, a plain re-implementation, and the
                                order relabelling property (exit 0 all pass);
                                --full: ContinuousAOGPT's gradcheck in full mode
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from torch_ref import causal_conv, die, metadata_config, rmsnorm, st_load, st_save

ACTIVATIONS = {"relu": F.relu, "silu": F.silu}
MASKED = -1e9           # the lab's fill for masked scores (not -inf)
LN_EPS = 1e-5
COND = 128              # ContinuousAOGPT's conditioning width (wtpe, adaLN input)
AO_TRUNC_STD = 0.02     # its reference init: truncated normal, cut at 3 std

# --------------------------------------------------------------------------
# Configs: the lab's own fields plus "family".

GPT_FIELDS = ("vocab_size", "max_pos", "d_model", "d_k", "d_v", "n_heads",
              "d_feedforward", "n_layers")
AO_FIELDS = ("block_size", "vector_dim", "n_layer", "n_head", "n_embd")


def validate_config(cfg, where="config"):
    """Raise ValueError unless cfg is a config of a member this file implements."""
    def positive(keys):
        for k in keys:
            v = cfg.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{where}: '{k}' missing or not a positive integer: {v!r}")
    fam = cfg.get("family")
    if fam == "transformer":
        positive(GPT_FIELDS)
        if cfg.get("activation") not in ACTIVATIONS:
            raise ValueError(f"{where}: activation {cfg.get('activation')!r} is not relu or silu")
        K = cfg.get("conv")
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ValueError(f"{where}: 'conv' must be an integer >= 0 (0 = off): {K!r}")
    elif fam == "continuous_aogpt":
        positive(AO_FIELDS)
        if cfg["n_embd"] % cfg["n_head"]:
            raise ValueError(f"{where}: n_embd {cfg['n_embd']} is not a multiple of "
                             f"n_head {cfg['n_head']}")
        if not isinstance(cfg.get("bias"), bool):
            raise ValueError(f"{where}: 'bias' missing or not a boolean: {cfg.get('bias')!r}")
        d = cfg.get("dropout")
        if not isinstance(d, (int, float)) or isinstance(d, bool) or not 0 <= d < 1:
            raise ValueError(f"{where}: 'dropout' missing or outside [0, 1): {d!r}")
    else:
        raise ValueError(f"{where}: family {fam!r} is not transformer or continuous_aogpt")
    return cfg


def param_shapes(cfg):
    """name -> shape of every parameter, under the lab's state_dict names."""
    if cfg["family"] == "transformer":
        return gpt_shapes(cfg)
    return aogpt_shapes(cfg)


def gpt_shapes(cfg):
    V, d, H = cfg["vocab_size"], cfg["d_model"], cfg["n_heads"]
    dk, dv, dff, K = cfg["d_k"], cfg["d_v"], cfg["d_feedforward"], cfg["conv"]
    s = {"decoder.tgt_emb.weight": [V, d], "decoder.pos_emb.weight": [cfg["max_pos"], d]}
    for i in range(cfg["n_layers"]):
        a = f"decoder.layers.{i}.dec_self_attn."
        s.update({a + "W_Q.weight": [H * dk, d], a + "W_K.weight": [H * dk, d],
                  a + "W_V.weight": [H * dv, d], a + "fc.weight": [d, H * dv],
                  a + "layernorm.weight": [d], a + "layernorm.bias": [d]})
        if K:
            s.update({a + "conv1d.weight": [d, 1, K], a + "conv1d.bias": [d]})
        f = f"decoder.layers.{i}.pos_ffn."
        s.update({f + "fc.0.weight": [dff, d], f + "fc.2.weight": [d, dff],
                  f + "layernorm.weight": [d], f + "layernorm.bias": [d]})
    s.update({"projection.weight": [V, d], "projection.bias": [V]})
    return s


def aogpt_shapes(cfg):
    C, D, L = cfg["n_embd"], cfg["vector_dim"], cfg["block_size"]
    hd, bias = C // cfg["n_head"], cfg["bias"]

    def linear(name, n_out, n_in, with_bias=bias):
        out = {name + ".weight": [n_out, n_in]}
        if with_bias:
            out[name + ".bias"] = [n_out]
        return out
    s = {"transformer.wpe.weight": [L + 1, C], "transformer.wtpe.weight": [L, COND]}
    for i in range(cfg["n_layer"]):
        b = f"transformer.h.{i}."
        s.update({b + "ln_1.weight": [C], b + "ln_2.weight": [C],
                  b + "attn.q_norm.weight": [hd], b + "attn.k_norm.weight": [hd]})
        s.update(linear(b + "attn.c_attn", 3 * C, C))
        s.update(linear(b + "attn.c_proj", C, C))
        s.update(linear(b + "mlp.c_fc", 4 * C, C))
        s.update(linear(b + "mlp.c_proj", C, 4 * C))
        s.update(linear(b + "adaLN.1", 6 * C, COND, True))
    s["transformer.final_layer.ln_f.weight"] = [C]
    s.update(linear("transformer.final_layer.adaLN_final.1", 2 * C, COND, True))
    s.update(linear("input_proj", C, D, True))         # bias whatever cfg.bias says
    s.update(linear("output_proj", D, C, True))
    s.update({"none_token": [1, 1, C], "mask_token": [D]})   # mask_token: never used
    return s


# --------------------------------------------------------------------------
# The token GPT (docs/science.md §7.1).

def gpt_attention_mask(tokens):
    """True where query t may not read key s: s > t, or key s holds token 0."""
    L = tokens.shape[1]
    future = torch.ones(L, L, dtype=torch.bool).triu(1)
    return future[None] | (tokens == 0)[:, None, :]            # [B, L, L]


def gpt_logits(p, cfg, tokens):
    """Logits [B, V] at the last position. Post-norm layers:
    h = LN(h + fc(Attn(W_Q u, W_K u, W_V u))), u = h or SiLU(conv(h));
    h = LN(h + W2 act(W1 h))."""
    B, L = tokens.shape
    d, H, dk, dv = cfg["d_model"], cfg["n_heads"], cfg["d_k"], cfg["d_v"]
    act = ACTIVATIONS[cfg["activation"]]
    h = p["decoder.tgt_emb.weight"][tokens] + p["decoder.pos_emb.weight"][:L]
    masked = gpt_attention_mask(tokens)[:, None]               # [B, 1, L, L]
    for i in range(cfg["n_layers"]):
        a = f"decoder.layers.{i}.dec_self_attn."
        u = h
        if cfg["conv"]:
            u = F.silu(causal_conv(h, p[a + "conv1d.weight"], p[a + "conv1d.bias"]))
        q = (u @ p[a + "W_Q.weight"].T).view(B, L, H, dk).transpose(1, 2)
        k = (u @ p[a + "W_K.weight"].T).view(B, L, H, dk).transpose(1, 2)
        v = (u @ p[a + "W_V.weight"].T).view(B, L, H, dv).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(dk)).masked_fill(masked, MASKED)
        ctx = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, L, H * dv)
        h = F.layer_norm(h + ctx @ p[a + "fc.weight"].T, (d,),
                         p[a + "layernorm.weight"], p[a + "layernorm.bias"], LN_EPS)
        f = f"decoder.layers.{i}.pos_ffn."
        ff = act(h @ p[f + "fc.0.weight"].T) @ p[f + "fc.2.weight"].T
        h = F.layer_norm(h + ff, (d,), p[f + "layernorm.weight"], p[f + "layernorm.bias"], LN_EPS)
    return h[:, -1] @ p["projection.weight"].T + p["projection.bias"]


# --------------------------------------------------------------------------
# ContinuousAOGPT (docs/science.md §7.2).

def linear(x, p, name):
    y = x @ p[name + ".weight"].T
    b = p.get(name + ".bias")
    return y if b is None else y + b


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


def aogpt_attention(x, p, b, n_head):
    B, T, C = x.shape
    hd = C // n_head
    q, k, v = linear(x, p, b + "attn.c_attn").split(C, -1)
    q, k, v = (t.view(B, T, n_head, hd).transpose(1, 2) for t in (q, k, v))
    q = rmsnorm(q, p[b + "attn.q_norm.weight"])
    k = rmsnorm(k, p[b + "attn.k_norm.weight"])
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(future, -math.inf)
    y = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, T, C)
    return linear(y, p, b + "attn.c_proj")


def aogpt_predictions(p, cfg, vectors, orders):
    """Predictions [B, L+1, D]: slot 0 holds the start token, slot j+1 the
    vector at position orders[:, j]; slot j is conditioned on the position it
    predicts, orders[:, j] (slot L on zeros)."""
    B, L, _ = vectors.shape
    C = cfg["n_embd"]
    rows = torch.arange(B)[:, None]
    wpe = p["transformer.wpe.weight"]
    start = p["none_token"].expand(B, 1, C) + wpe[0]
    x = torch.cat([start, linear(vectors[rows, orders], p, "input_proj") + wpe[1 + orders]], 1)
    cond = torch.cat([p["transformer.wtpe.weight"][orders],
                      torch.zeros(B, 1, COND, dtype=x.dtype)], 1)
    c = F.silu(cond)
    for i in range(cfg["n_layer"]):
        b = f"transformer.h.{i}."
        sh1, sc1, g1, sh2, sc2, g2 = linear(c, p, b + "adaLN.1").chunk(6, -1)
        x = x + g1 * aogpt_attention(modulate(rmsnorm(x, p[b + "ln_1.weight"]), sh1, sc1),
                                     p, b, cfg["n_head"])
        mlp_in = modulate(rmsnorm(x, p[b + "ln_2.weight"]), sh2, sc2)
        mlp = linear(F.gelu(linear(mlp_in, p, b + "mlp.c_fc")), p, b + "mlp.c_proj")
        x = x + g2 * mlp
    sh, sc = linear(c, p, "transformer.final_layer.adaLN_final.1").chunk(2, -1)
    y = modulate(rmsnorm(x, p["transformer.final_layer.ln_f.weight"]), sh, sc)
    return linear(y, p, "output_proj")


def aogpt_loss(pred, vectors, orders):
    """Mean over sequences and j < L of 1 - cos(P_j / max(|P_j|, 1e-6), S_j),
    S_j = vectors[orders[j]]; slot L is not scored."""
    rows = torch.arange(vectors.shape[0])[:, None]
    P = pred[:, :-1]
    Pn = P / P.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return (1 - F.cosine_similarity(Pn, vectors[rows, orders], dim=-1)).mean()


# --------------------------------------------------------------------------
# One step: loss, output, gradient of every parameter.

def forward(p, cfg, batch):
    """(loss, output): logits [B, V] (token) or predictions [B, L+1, D]."""
    if cfg["family"] == "transformer":
        logits = gpt_logits(p, cfg, batch["tokens"])
        return F.cross_entropy(logits, batch["labels"]), logits
    pred = aogpt_predictions(p, cfg, batch["vectors"], batch["orders"])
    return aogpt_loss(pred, batch["vectors"], batch["orders"]), pred


def run(params32, cfg, batch):
    """params32: name -> F32 array or tensor. Float64 loss, output and grads
    (zeros for a parameter the loss does not read, such as mask_token)."""
    p = {k: torch.as_tensor(v).to(torch.float64).requires_grad_(True)
         for k, v in params32.items()}
    loss, out = forward(p, cfg, batch)
    names = sorted(p)
    grads = torch.autograd.grad(loss, [p[k] for k in names], allow_unused=True)
    grads = {k: torch.zeros_like(p[k]) if g is None else g for k, g in zip(names, grads)}
    return loss.detach(), out.detach(), grads


# --------------------------------------------------------------------------
# Parameters. Drawn in float32 (so the F32 checkpoint is exact) from a seeded
# generator.

def trunc_normal(shape, std, gen):
    """N(0, std^2) cut at +-3 std, by the inverse CDF of a uniform draw."""
    lo = 0.5 * (1 + math.erf(-3 / math.sqrt(2)))
    u = torch.rand(*shape, generator=gen, dtype=torch.float32) * (1 - 2 * lo) + lo
    return (torch.erfinv(2 * u - 1) * std * math.sqrt(2)).clamp(-3 * std, 3 * std)


def aogpt_reference_init(cfg, gen):
    """The lab's init: Linear and Embedding weights truncated normal (std 0.02,
    cut at +-0.06), both c_proj weights std 0.02/sqrt(2 n_layer) cut at 3 std,
    biases 0, norm weights 1, none_token and mask_token N(0, 0.02^2)."""
    out = {}
    cproj_std = AO_TRUNC_STD / math.sqrt(2 * cfg["n_layer"])
    for name, shp in aogpt_shapes(cfg).items():
        if name in ("none_token", "mask_token"):
            v = torch.randn(*shp, generator=gen, dtype=torch.float32) * AO_TRUNC_STD
        elif name.endswith("c_proj.weight"):
            v = trunc_normal(shp, cproj_std, gen)
        elif name.endswith(".bias"):
            v = torch.zeros(*shp, dtype=torch.float32)
        elif len(shp) == 1:                                   # RMSNorm weights
            v = torch.ones(*shp, dtype=torch.float32)
        else:
            v = trunc_normal(shp, AO_TRUNC_STD, gen)
        out[name] = v
    return out


def fixture_init(cfg, gen):
    """Scales at which every path contributes visibly, so every gradient is
    non-trivial: 2-D weights N(0, 1/fan_in); embeddings, position tables and
    none/mask tokens N(0, 1); conv weights N(0, 1/K); biases N(0, 0.2^2);
    norm weights 1 + N(0, 0.2^2)."""
    out = {}
    for name, shp in param_shapes(cfg).items():
        z = torch.randn(*shp, generator=gen, dtype=torch.float32)
        if "emb" in name or name.endswith(("wpe.weight", "wtpe.weight")) or "_token" in name:
            v = z
        elif name.endswith("conv1d.weight"):
            v = z / math.sqrt(shp[-1])
        elif name.endswith(".bias"):
            v = 0.2 * z
        elif len(shp) == 1:                                   # LayerNorm / RMSNorm weights
            v = 1 + 0.2 * z
        else:
            v = z / math.sqrt(shp[1])
        out[name] = v
    return out


# --------------------------------------------------------------------------
# Batches.

def token_batch(B, L, V, seed):
    """Uniform tokens and labels, then token 0 (the padding the mask hides) at
    row 0's first position (a query with every key masked: the lab's -1e9
    makes it attend uniformly to all L positions) and inside row 1."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, V, (B, L), generator=g)
    labels = torch.randint(0, V, (B,), generator=g)
    tokens[0, 0] = 0
    if B > 1 and L > 1:
        tokens[1, L // 2] = 0
    return {"tokens": tokens, "labels": labels}


def vector_batch(B, L, D, seed, unit, shuffled):
    """Gaussian vectors (unit length if unit, as the data are); orders: one
    random permutation per row except row 0 (ascending), or None."""
    g = torch.Generator().manual_seed(seed)
    vec = torch.randn(B, L, D, generator=g, dtype=torch.float32)
    if unit:
        vec = vec / vec.norm(dim=-1, keepdim=True)
    orders = None
    if shuffled:
        orders = torch.stack([torch.arange(L)] +
                             [torch.randperm(L, generator=g) for _ in range(B - 1)])
    return vec, orders


def batch_tensors(batch):
    """What the batch file holds (int32 and float32, as the engine reads)."""
    if "tokens" in batch:
        return {k: batch[k].to(torch.int32).numpy() for k in ("tokens", "labels")}
    out = {"vectors": batch["vectors"].to(torch.float32).numpy()}
    if batch.get("orders_given", True):
        out["orders"] = batch["orders"].to(torch.int32).numpy()
    return out


# --------------------------------------------------------------------------
# Reading checkpoints and batches back, strictly.

def load_checkpoint(path):
    """(config, name -> F32 array); names and shapes exactly the config's."""
    tensors, meta = st_load(path)
    cfg = validate_config(metadata_config(path, meta), f"{path}: config")
    want = param_shapes(cfg)
    problems = [f"missing: {k}" for k in sorted(set(want) - set(tensors))]
    problems += [f"unexpected: {k}" for k in sorted(set(tensors) - set(want))]
    problems += [f"{k}: shape {list(tensors[k][1].shape)}, config wants {want[k]}"
                 for k in sorted(set(want) & set(tensors))
                 if list(tensors[k][1].shape) != want[k]]
    problems += [f"{k}: dtype {c}, want F32" for k, (c, _) in sorted(tensors.items()) if c != "F32"]
    if problems:
        raise ValueError(f"{path}: checkpoint does not match its config:\n  " + "\n  ".join(problems))
    return cfg, {k: a for k, (_, a) in tensors.items()}


def load_batch(path, cfg):
    t, _ = st_load(path)

    def get(name, code, ndim):
        if name not in t:
            raise ValueError(f"{path}: no '{name}' tensor")
        c, a = t[name]
        if c != code or a.ndim != ndim:
            raise ValueError(f"{path}: {name} is {c}{list(a.shape)}, want {code} with {ndim} dims")
        return a
    if cfg["family"] == "transformer":
        tok, lab = get("tokens", "I32", 2), get("labels", "I32", 1)
        B, L = tok.shape
        if lab.shape != (B,) or not 1 <= L <= cfg["max_pos"]:
            raise ValueError(f"{path}: tokens {list(tok.shape)}, labels {list(lab.shape)}: "
                             f"want [B, L] with L <= max_pos {cfg['max_pos']}, and [B]")
        V = cfg["vocab_size"]
        for k, a in (("tokens", tok), ("labels", lab)):
            if a.min() < 0 or a.max() >= V:
                raise ValueError(f"{path}: {k} outside [0, {V})")
        return {"tokens": torch.from_numpy(tok.astype(np.int64)),
                "labels": torch.from_numpy(lab.astype(np.int64))}
    vec = get("vectors", "F32", 3)
    B, L, D = vec.shape
    if D != cfg["vector_dim"] or not 1 <= L <= cfg["block_size"]:
        raise ValueError(f"{path}: vectors {list(vec.shape)}: want [B, L, {cfg['vector_dim']}] "
                         f"with L <= block_size {cfg['block_size']}")
    if not np.isfinite(vec).all():
        raise ValueError(f"{path}: vectors hold non-finite values")
    given = "orders" in t
    if given:
        orders = get("orders", "I32", 2)
        if orders.shape != (B, L):
            raise ValueError(f"{path}: orders {list(orders.shape)}, want {[B, L]}")
        for r, row in enumerate(orders):
            if sorted(row.tolist()) != list(range(L)):
                raise ValueError(f"{path}: orders row {r} is not a permutation of 0..{L - 1}")
    else:
        orders = np.tile(np.arange(L), (B, 1))
    return {"vectors": torch.from_numpy(vec).to(torch.float64),
            "orders": torch.from_numpy(orders.astype(np.int64)), "orders_given": given}


def expected_tensors(cfg, loss, out, grads):
    key = "logits" if cfg["family"] == "transformer" else "predictions"
    exp = {"loss": loss.reshape(1).numpy(), key: out.numpy()}
    exp.update({"grad." + k: g.numpy() for k, g in grads.items()})
    return exp


# --------------------------------------------------------------------------
# Fixtures.

def gpt_config(V, max_pos, d_model, d_k, d_v, n_heads, d_ff, n_layers, activation, conv):
    return {"family": "transformer", "vocab_size": V, "max_pos": max_pos, "d_model": d_model,
            "d_k": d_k, "d_v": d_v, "n_heads": n_heads, "d_feedforward": d_ff,
            "n_layers": n_layers, "activation": activation, "conv": conv}


def aogpt_config(block_size, vector_dim, n_layer, n_head, n_embd, bias):
    return {"family": "continuous_aogpt", "block_size": block_size, "vector_dim": vector_dim,
            "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "dropout": 0.0,
            "bias": bias}


# name, config, init, batch (B, L, seed[, unit vectors, shuffled orders]), what it covers
CASES = [
    ("gpt_relu", gpt_config(13, 8, 8, 4, 3, 2, 12, 1, "relu", 0), "fixture", (4, 8, 11),
     "the lab's model as published: ReLU, no conv, d_k != d_v, L = max_pos"),
    ("gpt_silu_conv", gpt_config(13, 10, 8, 3, 5, 3, 16, 2, "silu", 4), "fixture", (3, 7, 22),
     "the paper's variant: SiLU, conv K 4, 3 heads, 2 layers, L < max_pos"),
    ("gpt_relu_conv_short", gpt_config(9, 4, 6, 6, 6, 1, 8, 1, "relu", 4), "fixture", (5, 3, 33),
     "one head, d_k = d_v, conv K 4 longer than L 3"),
    ("ao_ref_ascending", aogpt_config(5, 6, 1, 2, 8, True), "reference", (3, 5, 44, True, False),
     "the lab's init, bias, no orders tensor (ascending), unit vectors"),
    ("ao_shuffled_nobias", aogpt_config(6, 4, 2, 2, 8, False), "fixture", (3, 6, 55, False, True),
     "2 layers, bias false, per-row orders (row 0 ascending), non-unit vectors"),
]


def case_instance(cfg, init, batch_args, seed_params):
    gen = torch.Generator().manual_seed(seed_params)
    params = aogpt_reference_init(cfg, gen) if init == "reference" else fixture_init(cfg, gen)
    if cfg["family"] == "transformer":
        B, L, seed = batch_args
        batch = token_batch(B, L, cfg["vocab_size"], seed)
    else:
        B, L, seed, unit, shuffled = batch_args
        vec, orders = vector_batch(B, L, cfg["vector_dim"], seed, unit, shuffled)
        batch = {"vectors": vec.to(torch.float64), "orders_given": orders is not None,
                 "orders": orders if orders is not None else torch.arange(L).repeat(B, 1)}
    return params, batch


def cmd_make(outdir):
    if not cmd_selftest(full=True):
        die("self-test failed; not writing fixtures")
    os.makedirs(outdir, exist_ok=True)
    rows = []
    for name, cfg, init, batch_args, what in CASES:
        seed_params = batch_args[2] - 1
        params, batch = case_instance(cfg, init, batch_args, seed_params)
        loss, out, grads = run(params, cfg, batch)
        base = f"{outdir}/{name}"
        st_save(base + ".ckpt.safetensors", {k: v.numpy() for k, v in params.items()},
                {"format": "pt", "config": json.dumps(cfg)})
        st_save(base + ".batch.safetensors", batch_tensors(batch))
        st_save(base + ".expected.safetensors", expected_tensors(cfg, loss, out, grads))
        # Read both back strictly: the same loss, bit for bit.
        cfg2, params2 = load_checkpoint(base + ".ckpt.safetensors")
        loss2 = run(params2, cfg2, load_batch(base + ".batch.safetensors", cfg2))[0]
        assert float(loss2) == float(loss), f"{name}: round trip changed the loss"
        nparam = sum(v.numel() for v in params.values())
        gmin = min(float(g.abs().max()) for k, g in grads.items() if k != "mask_token")
        sizes = [os.path.getsize(f"{base}.{k}.safetensors") for k in ("ckpt", "batch", "expected")]
        print(f"{name}: loss {float(loss):.9f}  {nparam} parameters  smallest max|grad| "
              f"{gmin:.3g}  bytes {sizes}")
        rows.append((name, cfg, init, batch_args, seed_params, what, float(loss), nparam, gmin, sizes))
    write_readme(outdir, rows)


def write_readme(outdir, rows):
    L = [
        "# Transformer-family reference fixtures",
        "",
        "Generated by `t/torch_ref_gpt.py` (an independent float64 PyTorch",
        "implementation of the two members of docs/science.md §7) with",
        "",
        "    /usr/bin/python3 t/torch_ref_gpt.py make t/data/gpt",
        "",
        "(`make fixtures` runs it). Generation is seeded and reproducible; it first",
        "runs the script's self-test (gradcheck of both models, the token GPT",
        "against a plain loop implementation, ContinuousAOGPT's relabelling",
        f"property). torch {torch.__version__}, numpy {np.__version__}.",
        "`t/torch_gpt.t` checks these files without PyTorch (names, shapes, dtypes,",
        "finite values, the loss recomputed from the outputs) and, where PyTorch is",
        "installed, runs the self-test and `torch_ref_gpt.py verify t/data/gpt`.",
        "For checkpoints the engine writes, `torch_ref_gpt.py check CKPT BATCH OUT",
        "[RTOL]` compares its output with the reference's, and `torch_ref_gpt.py",
        "batch OUT CKPT B L SEED` draws a batch for the checkpoint's family.",
        "",
        "Per case NAME, three safetensors files:",
        "",
        "- `NAME.ckpt.safetensors`: every parameter as F32 under the lab's state_dict",
        "  names; `__metadata__` = {\"format\": \"pt\", \"config\": JSON} with \"family\"",
        "  (`transformer` or `continuous_aogpt`) and the lab's config fields.",
        "- `NAME.batch.safetensors`: token cases `tokens` I32 [B, L] and `labels` I32",
        "  [B]; continuous cases `vectors` F32 [B, L, D] and `orders` I32 [B, L] (one",
        "  permutation per row), or no `orders` (ascending).",
        "- `NAME.expected.safetensors`: F64 results computed from the F32 parameters:",
        "  `loss` [1]; `logits` [B, V] (token: the last position) or `predictions`",
        "  [B, L + 1, D] (continuous: every slot, the last one unscored); `grad.NAME`",
        "  for every checkpoint tensor (zeros for `mask_token`, which the model never",
        "  reads, and for the rows of `decoder.pos_emb.weight` at positions >= L).",
        "",
        "Token GPT (`transformer`): tgt_emb + pos_emb; per layer, post-norm,",
        "h = LayerNorm(h + fc(Attn(W_Q u, W_K u, W_V u))) with u = h, or",
        "u = SiLU(causal depthwise conv(h) + bias) when `conv` K > 0 (the residual",
        "adds h), then h = LayerNorm(h + fc.2(act(fc.0 h))); attention scores",
        "scaled by 1/sqrt(d_k), future keys and keys holding token 0 set to -1e9",
        "(so a query whose keys are all masked attends uniformly to all L",
        "positions, future ones included: row 0 of every token batch starts with",
        "token 0, and in gpt_silu_conv the next layer's conv carries that",
        "position's output into the logits); LayerNorm eps",
        "1e-5; logits = projection(h at the last position); loss = mean",
        "cross-entropy against `labels`. Conv weights are",
        "`decoder.layers.{i}.dec_self_attn.conv1d.weight` [d_model, 1, K], the last",
        "tap on the current token, and `.bias`.",
        "",
        "ContinuousAOGPT (`continuous_aogpt`): slot 0 = none_token + wpe[0], slot",
        "j + 1 = input_proj(v[o_j]) + wpe[1 + o_j] for the row's order o; slot j is",
        "conditioned on c_j = wtpe[o_j] (c_L = 0) through SiLU and adaLN (shift,",
        "scale, gate of attention, then of the MLP; gates raw); RMSNorm eps 1e-5",
        "everywhere, q and k RMSNorm per head, causal attention scaled by",
        "1/sqrt(n_embd / n_head), GELU (erf) MLP 4x wide; final RMSNorm modulated by",
        "adaLN_final (shift, scale); predictions = output_proj. Loss = mean over",
        "rows and j < L of 1 - cos(P_j / max(|P_j|, 1e-6), v[o_j]). The conditioning",
        "width is 128, as in the lab's code; input_proj and output_proj always have",
        "a bias, the attention and MLP maps only when `bias` is true; adaLN always.",
        "No `attn.bias` causal-mask buffer (the lab's model on torch >= 2.0 has none).",
        "",
        "Parameters: `fixture` draws 2-D weights N(0, 1/fan_in), embeddings, position",
        "tables and none/mask tokens N(0, 1), conv weights N(0, 1/K), biases",
        "N(0, 0.2^2), norm weights 1 + N(0, 0.2^2), so every path contributes;",
        "`reference` is ContinuousAOGPT's own init (truncated normal std 0.02 cut at",
        "+-0.06, both c_proj weights std 0.02/sqrt(2 n_layer) cut at 3 std, biases 0,",
        "norms 1, none_token and mask_token N(0, 0.02^2)). Both are drawn in float32",
        "from `torch.Generator().manual_seed(param seed)`; the batch from its own",
        "seed (tokens uniform in 1..V-1 before the zeros are placed, labels uniform;",
        "vectors Gaussian, unit length where noted, orders `randperm` per row after",
        "row 0's ascending one).",
        "",
        "| case | family | config | init | param seed | B | L | batch seed | parameters | loss | min over tensors of max abs grad | bytes (ckpt, batch, expected) | covers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, cfg, init, ba, sp, what, loss, npar, gmin, sz) in rows:
        conf = ", ".join(f"{k} {json.dumps(v)}" for k, v in cfg.items() if k != "family")
        L.append(f"| {name} | {cfg['family']} | {conf} | {init} | {sp} | {ba[0]} | {ba[1]} | "
                 f"{ba[2]} | {npar} | {loss:.9f} | {gmin:.3g} | {sz[0]}, {sz[1]}, {sz[2]} | "
                 f"{what} |")
    L += ["",
          "`min over tensors of max abs grad` leaves out `mask_token`. Under the",
          "reference init the attention scores are tiny, so q_norm and k_norm barely",
          "matter: their gradients are ~1e-6 in ao_ref_ascending (compare them in",
          "double, or relative to their own scale).",
          ""]
    with open(f"{outdir}/README.md", "w") as f:
        f.write("\n".join(L))


def check(label, ckpt, batchf, outf, rtol):
    """Recompute CKPT on BATCH and print one line: True when OUT holds exactly
    loss, the output and every gradient, each within rtol of the reference
    tensor's largest magnitude."""
    try:
        cfg, params = load_checkpoint(ckpt)
        batch = load_batch(batchf, cfg)
        got, _ = st_load(outf)
    except (ValueError, OSError) as e:
        print(f"FAIL {label}: {e}")
        return False
    ref = expected_tensors(cfg, *run(params, cfg, batch))
    worst, bad = 0.0, []
    for k in sorted(set(got) | set(ref)):
        if k not in got or k not in ref or got[k][1].shape != ref[k].shape:
            bad.append(f"{k}: " + ("missing" if k not in got else "not in the reference" if k not in ref
                                   else f"shape {list(got[k][1].shape)}, want {list(ref[k].shape)}"))
            continue
        scale = max(float(np.abs(ref[k]).max()), 1e-300)
        err = float(np.abs(got[k][1].astype(np.float64) - ref[k]).max()) / scale
        worst = max(worst, err)
        if not err <= rtol:                 # NaN fails too
            bad.append(f"{k}: error {err:.3g} of max {scale:.3g}")
    print(f"{'ok  ' if not bad else 'FAIL'} {label}: {len(ref)} tensors, worst relative "
          f"error {worst:.3g} (tol {rtol:g})" + "".join(f"\n    {b}" for b in bad))
    return not bad


def cmd_verify(outdir):
    """Recompute each committed case: the same numbers to 1e-10."""
    names = sorted(f[:-len(".ckpt.safetensors")] for f in os.listdir(outdir)
                   if f.endswith(".ckpt.safetensors"))
    if not names:
        print(f"FAIL: no NAME.ckpt.safetensors in {outdir}")
        return 1
    ok = [check(n, *(f"{outdir}/{n}.{k}.safetensors" for k in ("ckpt", "batch", "expected")), 1e-10)
          for n in names]
    return 0 if all(ok) else 1


def cmd_batch(out, ckpt, B, L, seed):
    """A batch for CKPT's family, drawn as the fixtures' are: tokens with
    token 0 first in row 0, or Gaussian vectors with per-row orders."""
    cfg, _ = load_checkpoint(ckpt)
    B, L, seed = int(B), int(L), int(seed)
    if cfg["family"] == "transformer":
        batch = token_batch(B, L, cfg["vocab_size"], seed)
    else:
        vec, orders = vector_batch(B, L, cfg["vector_dim"], seed, False, True)
        batch = {"vectors": vec, "orders": orders}
    st_save(out, batch_tensors(batch))
    return 0


# --------------------------------------------------------------------------
# selftest: independent formulations and properties that must hold.

def plain_gpt_logits(p, cfg, tokens, pad_mask=True):
    """The token GPT written with explicit loops over sequences, heads and
    queries: softmax over the allowed keys only (equal weights on all L
    positions when none is allowed); LayerNorm, the activations and the conv
    (a sum over the taps that reach back from t) spelled out. pad_mask=False drops the
    token-0 rule (a deliberately wrong model)."""
    B, L = tokens.shape
    H, dk, dv, K = cfg["n_heads"], cfg["d_k"], cfg["d_v"], cfg["conv"]
    silu = lambda x: x / (1 + torch.exp(-x))                  # noqa: E731
    act = {"relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
           "silu": silu}[cfg["activation"]]

    def layer_norm(x, w, b):
        mu = x.sum() / x.numel()
        var = ((x - mu) ** 2).sum() / x.numel()
        return (x - mu) / torch.sqrt(var + LN_EPS) * w + b
    out = []
    for bi in range(B):
        hs = [p["decoder.tgt_emb.weight"][int(tokens[bi, t])] + p["decoder.pos_emb.weight"][t]
              for t in range(L)]
        for i in range(cfg["n_layers"]):
            a = f"decoder.layers.{i}.dec_self_attn."
            Wq, Wk, Wv = p[a + "W_Q.weight"], p[a + "W_K.weight"], p[a + "W_V.weight"]
            us = hs
            if K:                   # tap j of K multiplies the input j - (K-1) steps back
                w_c, b_c = p[a + "conv1d.weight"][:, 0], p[a + "conv1d.bias"]
                us = [silu(b_c + sum(w_c[:, j] * hs[t + j - (K - 1)]
                                     for j in range(K) if t + j >= K - 1)) for t in range(L)]
            new = []
            for t in range(L):
                heads = []
                for hh in range(H):
                    rq, rv = slice(hh * dk, (hh + 1) * dk), slice(hh * dv, (hh + 1) * dv)
                    keys = [s for s in range(t + 1) if not (pad_mask and int(tokens[bi, s]) == 0)]
                    if keys:
                        q = Wq[rq] @ us[t]
                        sc = torch.stack([(Wk[rq] @ us[s]) @ q for s in keys]) / dk ** 0.5
                        w = torch.exp(sc - sc.max())
                        w = w / w.sum()
                    else:           # every score -1e9: equal weights on all L positions
                        keys, w = list(range(L)), torch.full((L,), 1.0 / L)
                    heads.append(sum(w[j] * (Wv[rv] @ us[s]) for j, s in enumerate(keys)))
                z = hs[t] + p[a + "fc.weight"] @ torch.cat(heads)
                new.append(layer_norm(z, p[a + "layernorm.weight"], p[a + "layernorm.bias"]))
            f = f"decoder.layers.{i}.pos_ffn."
            hs = [layer_norm(x + p[f + "fc.2.weight"] @ act(p[f + "fc.0.weight"] @ x),
                             p[f + "layernorm.weight"], p[f + "layernorm.bias"]) for x in new]
        out.append(p["projection.weight"] @ hs[-1] + p["projection.bias"])
    return torch.stack(out)


def plain_cross_entropy(logits, labels):
    m = logits.max(-1, keepdim=True).values
    lse = m[:, 0] + torch.log(torch.exp(logits - m).sum(-1))
    return (lse - logits[torch.arange(len(labels)), labels]).mean()


def double_params(params32):
    return {k: v.to(torch.float64).requires_grad_(True) for k, v in params32.items()}


def rel_diff(a, b):
    """max |a - b| over max |b|."""
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-300)


def relabel(params, batch, sigma):
    """The same computation with positions renamed by sigma: vectors
    v'[i] = v[sigma(i)], orders o' = sigma^-1(o), and the position tables
    permuted to match (wpe'[1 + i] = wpe[1 + sigma(i)], wtpe'[i] = wtpe[sigma(i)])."""
    inv = torch.argsort(sigma)
    p = dict(params)
    wpe = params["transformer.wpe.weight"]
    p["transformer.wpe.weight"] = torch.cat([wpe[:1], wpe[1:][sigma]])
    p["transformer.wtpe.weight"] = params["transformer.wtpe.weight"][sigma]
    return p, {"vectors": batch["vectors"][:, sigma], "orders": inv[batch["orders"]]}


def cmd_selftest(full=False):
    results = []

    def report(name, ok, detail):
        results.append(ok)
        print(f"selftest {'ok  ' if ok else 'FAIL'} {name}: {detail}")

    # 1. The token GPT against the plain loops: loss, logits, grads.
    for tag, cfg, B, L in (("relu 1 layer 2 heads", gpt_config(11, 7, 6, 4, 3, 2, 9, 1, "relu", 0), 3, 7),
                           ("relu 2 layers 3 heads", gpt_config(9, 6, 6, 2, 3, 3, 7, 2, "relu", 0), 2, 5),
                           ("silu 1 layer 1 head", gpt_config(8, 4, 5, 5, 4, 1, 6, 1, "silu", 0), 3, 4),
                           ("silu conv 4, 2 layers 2 heads", gpt_config(9, 6, 6, 3, 2, 2, 7, 2, "silu", 4), 2, 6),
                           ("relu conv 3 > L 2", gpt_config(7, 3, 4, 2, 2, 2, 5, 1, "relu", 3), 3, 2)):
        params = fixture_init(cfg, torch.Generator().manual_seed(L))
        batch = token_batch(B, L, cfg["vocab_size"], 100 + L)
        loss, logits, grads = run(params, cfg, batch)
        p = double_params(params)
        logits2 = plain_gpt_logits(p, cfg, batch["tokens"])
        loss2 = plain_cross_entropy(logits2, batch["labels"])
        names = sorted(p)
        g2 = torch.autograd.grad(loss2, [p[k] for k in names])
        err = max([rel_diff(loss, loss2.detach()), rel_diff(logits, logits2.detach())] +
                  [rel_diff(grads[k], g) for k, g in zip(names, g2)])
        report(f"token GPT {tag} vs plain loops", err <= 1e-12,
               f"loss, logits and {len(names)} gradients, worst relative error {err:.3g} (tol 1e-12)")
        wrong = plain_gpt_logits(p, cfg, batch["tokens"], pad_mask=False).detach()
        d = rel_diff(wrong, logits)
        report(f"token GPT {tag}: the comparison sees the token-0 mask", d > 1e-6,
               f"plain loops without it differ by {d:.3g} (must exceed 1e-6)")

    # 2. ContinuousAOGPT relabelling: the loss, predictions and the gradients
    # of what is not a position table are unchanged; the position tables'
    # gradients are permuted the same way.
    cfg = aogpt_config(6, 5, 2, 2, 8, True)
    params = fixture_init(cfg, torch.Generator().manual_seed(3))
    vec, orders = vector_batch(3, 6, 5, 4, False, True)
    base = {"vectors": vec.to(torch.float64), "orders": orders}
    g = torch.Generator().manual_seed(5)
    for start in ("ascending", "shuffled"):
        b0 = dict(base, orders=torch.arange(6).repeat(3, 1)) if start == "ascending" else base
        sigma = torch.randperm(6, generator=g)
        loss, pred, grads = run(params, cfg, b0)
        p2, b2 = relabel(params, b0, sigma)
        loss2, pred2, grads2 = run(p2, cfg, b2)
        back = dict(grads2)
        for k in ("transformer.wpe.weight", "transformer.wtpe.weight"):
            off = 1 if k.endswith("wpe.weight") else 0
            unperm = grads2[k].clone()
            unperm[off:][sigma] = grads2[k][off:]
            back[k] = unperm
        err = max([rel_diff(loss2, loss), rel_diff(pred2, pred)] +
                  [rel_diff(back[k], grads[k]) for k in grads if k != "mask_token"])
        report(f"ContinuousAOGPT relabelling, {start} order, sigma {sigma.tolist()}", err <= 1e-12,
               f"loss {float(loss):.9f}, predictions, {len(grads)} gradients; "
               f"worst relative error {err:.3g} (tol 1e-12)")
        wrong = run(params, cfg, b2)[0]
        report(f"ContinuousAOGPT relabelling, {start} order: tables left unpermuted change the loss",
               rel_diff(wrong, loss) > 1e-6, f"{float(wrong):.9f} vs {float(loss):.9f}")

    # 3. Causality: changing the vector generated at step j leaves the
    # predictions of slots 0..j alone and changes slot j + 1.
    j = 2
    _, pred, _ = run(params, cfg, base)
    b3 = {"vectors": base["vectors"].clone(), "orders": base["orders"]}
    rows = torch.arange(3)
    b3["vectors"][rows, base["orders"][:, j]] += 0.5
    _, pred3, _ = run(params, cfg, b3)
    same = float((pred3[:, :j + 1] - pred[:, :j + 1]).abs().max())
    moved = float((pred3[:, j + 1] - pred[:, j + 1]).abs().max())
    report("ContinuousAOGPT causality", same <= 1e-13 * float(pred.abs().max()) and moved > 1e-6,
           f"slots 0..{j} change by {same:.3g} (must be 0 but for rounding), "
           f"slot {j + 1} by {moved:.3g}")

    # 4. gradcheck of loss and outputs, tiny instances, double.
    # Full mode builds every Jacobian column by finite differences; fast mode
    # checks random projections of it. The 128-wide conditioning makes
    # ContinuousAOGPT's full check a minute, so only `make` runs it.
    checks = [("token GPT silu conv 3, 2 layers", gpt_config(7, 5, 4, 3, 2, 2, 5, 2, "silu", 3),
               token_batch(2, 5, 7, 9)),
              ("token GPT relu, 1 layer", gpt_config(6, 4, 4, 2, 3, 2, 3, 1, "relu", 0),
               token_batch(2, 4, 6, 10)),
              ("ContinuousAOGPT bias, 2 layers, shuffled", aogpt_config(3, 3, 2, 2, 4, True), None),
              ("ContinuousAOGPT no bias, 1 layer, L 1", aogpt_config(1, 3, 1, 1, 2, False), None)]
    for tag, cfg, batch in checks:
        params = fixture_init(cfg, torch.Generator().manual_seed(21))
        if batch is None:
            L = cfg["block_size"]
            vec, orders = vector_batch(2, L, cfg["vector_dim"], 8, False, True)
            batch = {"vectors": vec.to(torch.float64), "orders": orders}
        names = sorted(params)
        inputs = tuple(params[k].to(torch.float64).requires_grad_(True) for k in names)
        fast = cfg["family"] == "continuous_aogpt" and not full

        def f(*ts):
            return forward(dict(zip(names, ts)), cfg, batch)
        try:
            ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6,
                                          fast_mode=fast)
        except RuntimeError as e:       # gradcheck raises on a mismatch
            print(e)
            ok = False
        report(f"gradcheck {tag}", ok,
               f"loss and outputs w.r.t. {sum(t.numel() for t in inputs)} parameters, "
               f"{'fast' if fast else 'full'} mode")

    # 5. The reference init at seed 004's size: the parameter count (about
    # 4.2 M) and the truncation.
    cfg = aogpt_config(128, 256, 4, 4, 256, True)
    init = aogpt_reference_init(cfg, torch.Generator().manual_seed(4))
    n = sum(v.numel() for v in init.values())
    w = torch.cat([v.flatten() for k, v in init.items() if k.endswith("c_attn.weight")])
    cp = torch.cat([v.flatten() for k, v in init.items() if k.endswith("c_proj.weight")])
    cut = 3 * AO_TRUNC_STD / math.sqrt(8)
    zero_bias = all(float(v.abs().max()) == 0 for k, v in init.items() if k.endswith(".bias"))
    ok = (n == 4197888 and float(w.abs().max()) <= 0.06 and abs(float(w.std()) / 0.02 - 0.9866) < 0.01
          and float(cp.abs().max()) <= cut and zero_bias)
    report("ContinuousAOGPT reference init, seed 004's size", ok,
           f"{n} parameters (want 4197888), c_attn max {float(w.abs().max()):.4f} (<= 0.06) "
           f"std/0.02 {float(w.std()) / 0.02:.4f} (truncated: 0.9866), c_proj max "
           f"{float(cp.abs().max()):.4f} (<= {cut:.4f}), biases zero {zero_bias}")
    return all(results)


def main(argv):
    torch.set_default_dtype(torch.float64)
    if len(argv) == 3 and argv[1] == "make":
        cmd_make(argv[2])
        return 0
    if len(argv) == 3 and argv[1] == "verify":
        return cmd_verify(argv[2])
    if argv[1:2] == ["check"] and len(argv) in (5, 6):
        return 0 if check(argv[4], *argv[2:5], float(argv[5]) if len(argv) == 6 else 1e-4) else 1
    if len(argv) == 7 and argv[1] == "batch":
        try:
            return cmd_batch(*argv[2:])
        except (ValueError, OSError) as e:
            die(str(e))
    if argv[1:] in (["selftest"], ["selftest", "--full"]):
        return 0 if cmd_selftest(full=len(argv) == 3) else 1
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
