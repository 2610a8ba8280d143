#!/usr/bin/python3
"""The same training step as `achilles bench`, in PyTorch (Debian's
python3-torch), written the way a competent user would: nn.Linear,
F.conv1d (depthwise, causal padding), the scans vectorised over the batch,
tied lm_head on the last position only, torch.optim.AdamW,
clip_grad_norm_, float32, torch.set_num_threads(T).

Mamba-2's SSD uses the quadratic (attention-like) form over the L = 8
positions by default (--ssd quadratic), which measured faster than the
sequential scan (--ssd scan) at the paper's sizes; Mamba-1's selective scan
is a loop over t with the state [B, Di, N] (its quadratic form would need
[B, Di, N, L, L]). The math follows t/torch_ref.py (mamba_ssm's reference).

Usage: torch_bench.py [--arch mamba1|mamba2] [--layers N] [--batch B]
       [--length L] [--threads T] [--steps S] [--ssd quadratic|scan]
       [--conv conv1d|shifted]
Prints a summary and one 'RESULT key=value ...' line like achilles bench.
"""
import argparse
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


CONV = "conv1d"  # set from --conv


def causal_conv_silu(conv, x):
    """x [B, L, C] -> silu(depthwise causal conv1d(x)) [B, L, C]: with
    F.conv1d (nn.Conv1d, padding K-1, keep the first L outputs), or as K
    shifted multiply-adds over the time axis (--conv shifted: torch 1.13's
    CPU depthwise conv backward is slow)."""
    L = x.shape[1]
    if CONV == "conv1d":
        return F.silu(conv(x.transpose(1, 2))[..., :L]).transpose(1, 2)
    w, K = conv.weight, conv.weight.shape[-1]
    xp = F.pad(x, (0, 0, K - 1, 0))
    out = conv.bias + w[:, 0, 0] * xp[:, 0:L]
    for k in range(1, K):
        out = out + w[:, 0, k] * xp[:, k:k + L]
    return F.silu(out)


class Mamba1(nn.Module):
    def __init__(self, D, N, K, expand, dt_rank):
        super().__init__()
        Di = expand * D
        self.Di, self.N, self.R = Di, N, dt_rank
        self.in_proj = nn.Linear(D, 2 * Di, bias=False)
        self.conv1d = nn.Conv1d(Di, Di, K, groups=Di, padding=K - 1, bias=True)
        self.x_proj = nn.Linear(Di, dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(dt_rank, Di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(Di, 1))
        self.D = nn.Parameter(torch.ones(Di))
        self.out_proj = nn.Linear(Di, D, bias=False)

    def forward(self, hs):
        x, z = self.in_proj(hs).split([self.Di, self.Di], -1)
        u = causal_conv_silu(self.conv1d, x)
        dt_r, Bm, Cm = self.x_proj(u).split([self.R, self.N, self.N], -1)
        delta = F.softplus(self.dt_proj(dt_r))                  # [B, L, Di]
        A = -torch.exp(self.A_log)                               # [Di, N]
        h = u.new_zeros(u.shape[0], self.Di, self.N)
        ys = []
        for t in range(u.shape[1]):
            dt = delta[:, t, :, None]                            # [B, Di, 1]
            h = torch.exp(dt * A) * h + (dt * u[:, t, :, None]) * Bm[:, t, None, :]
            ys.append(torch.einsum("bdn,bn->bd", h, Cm[:, t]))
        y = torch.stack(ys, 1) + u * self.D
        return self.out_proj(y * F.silu(z))


class Mamba2(nn.Module):
    def __init__(self, D, N, K, expand, P, ssd):
        super().__init__()
        Di = expand * D
        H = Di // P
        self.Di, self.N, self.P, self.H, self.ssd = Di, N, P, H, ssd
        self.in_proj = nn.Linear(D, 2 * Di + 2 * N + H, bias=False)
        Cd = Di + 2 * N
        self.conv1d = nn.Conv1d(Cd, Cd, K, groups=Cd, padding=K - 1, bias=True)
        self.dt_bias = nn.Parameter(torch.full((H,), math.log(math.expm1(0.01))))
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = RMSNorm(Di)
        self.out_proj = nn.Linear(Di, D, bias=False)

    def forward(self, hs):
        Bsz, L, _ = hs.shape
        Di, N, H, P = self.Di, self.N, self.H, self.P
        z, xBC, dt = self.in_proj(hs).split([Di, Di + 2 * N, H], -1)
        xBC = causal_conv_silu(self.conv1d, xBC)
        x, Bm, Cm = xBC.split([Di, N, N], -1)
        x = x.reshape(Bsz, L, H, P)
        delta = F.softplus(dt + self.dt_bias)                    # [B, L, H]
        A = -torch.exp(self.A_log)                               # [H]
        if self.ssd == "quadratic":
            a = (delta * A).transpose(1, 2)                      # [B, H, L]
            cs = torch.cumsum(a, -1)
            seg = cs[..., :, None] - cs[..., None, :]            # sum_{k=s+1..t} a_k
            mask = torch.ones(L, L, dtype=torch.bool, device=hs.device).tril()
            decay = torch.exp(seg.masked_fill(~mask, -math.inf))  # [B, H, L, L]
            G = torch.bmm(Cm, Bm.transpose(1, 2))                # [B, L, L]: C_t . B_s
            M = G[:, None] * decay * delta.transpose(1, 2)[:, :, None, :]
            y = torch.einsum("bhts,bshp->bthp", M, x)
        else:
            h = x.new_zeros(Bsz, H, P, N)
            ys = []
            for t in range(L):
                dtt = delta[:, t]                                # [B, H]
                h = (torch.exp(dtt * A)[:, :, None, None] * h
                     + (dtt[:, :, None, None] * x[:, t, :, :, None]) * Bm[:, t, None, None, :])
                ys.append(torch.einsum("bhpn,bn->bhp", h, Cm[:, t]))
            y = torch.stack(ys, 1)
        y = (y + x * self.D[:, None]).reshape(Bsz, L, Di)
        y = self.norm(y * F.silu(z))
        return self.out_proj(y)


class LM(nn.Module):
    def __init__(self, arch, layers, D=32, N=128, K=4, expand=2, P=64, V=201, ssd="quadratic"):
        super().__init__()
        self.embedding = nn.Embedding(V, D)
        self.norms = nn.ModuleList(RMSNorm(D) for _ in range(layers))
        if arch == "mamba1":
            self.mixers = nn.ModuleList(Mamba1(D, N, K, expand, math.ceil(D / 16)) for _ in range(layers))
        else:
            self.mixers = nn.ModuleList(Mamba2(D, N, K, expand, P, ssd) for _ in range(layers))
        self.norm_f = RMSNorm(D)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for norm, mixer in zip(self.norms, self.mixers):
            x = x + mixer(norm(x))
        return F.linear(self.norm_f(x[:, -1]), self.embedding.weight)  # tied head, last position


def forward_flops(arch, layers, B, L, D=32, N=128, K=4, expand=2, P=64, V=201):
    """The count achilles bench uses (see its --help)."""
    R, Di = B * L, expand * D
    if arch == "mamba1":
        Cd, Pj, X, Rk = Di, 2 * Di, math.ceil(D / 16) + 2 * N, math.ceil(D / 16)
    else:
        Cd, Pj, H = Di + 2 * N, 2 * Di + 2 * N + Di // P, Di // P
    layer = 4 * R * D + 2 * R * D * Pj + 2 * R * Cd * K + 4 * R * Cd + 5 * R * Di + 2 * R * Di * D + R * D
    if arch == "mamba1":
        layer += 2 * R * Di * X + 2 * R * Rk * Di + 7 * R * Di * N + 6 * R * Di
    else:
        layer += B * (N * L * (L + 1) + H * P * L * (L + 1) + 2 * H * L * P) + 4 * R * Di
    return layers * layer + 2 * B * D * V + 4 * B * D + 3 * B * V


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="mamba2", choices=["mamba1", "mamba2"])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--length", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--ssd", default="quadratic", choices=["quadratic", "scan"])
    ap.add_argument("--conv", default="conv1d", choices=["conv1d", "shifted"])
    a = ap.parse_args()
    global CONV
    CONV = a.conv
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = LM(a.arch, a.layers, ssd=a.ssd)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, 201, (a.batch, a.length), generator=g)
    labels = torch.randint(0, 201, (a.batch,), generator=g)

    def step():
        loss = F.cross_entropy(model(tokens), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    per = (time.perf_counter() - t0) / a.steps
    flops = 3 * forward_flops(a.arch, a.layers, a.batch, a.length)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    nparams = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}: {a.arch}, {a.layers} layers, batch {a.batch} x {a.length}, "
          f"{torch.get_num_threads()} threads, ssd {a.ssd}, conv {a.conv}, {nparams} parameters")
    print(f"  step {1e3 * per:.2f} ms over {a.steps} steps; loss {loss:.4f}")
    print(f"  training sequences/s: {a.batch / per:.0f}")
    print(f"  {flops * 1e-9:.3f} GFLOP/step, achieved {flops * 1e-9 / per:.1f} GFLOP/s")
    print(f"  peak memory (ru_maxrss): {rss:.0f} MiB")
    print(f"RESULT impl=torch-{a.conv} arch={a.arch} layers={a.layers} batch={a.batch} length={a.length} "
          f"threads={torch.get_num_threads()} step_ms={1e3 * per:.3f} seq_per_s={a.batch / per:.1f} "
          f"gflops={flops * 1e-9 / per:.2f} maxrss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
