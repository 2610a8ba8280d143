#!/usr/bin/python3
"""The same training step as `achilles bench`, in PyTorch (Debian's
python3-torch), written the way a competent user would: nn.Linear,
F.conv1d (depthwise, causal padding), the scans vectorised over the batch,
tied lm_head on the last position only, torch.optim.AdamW,
clip_grad_norm_, float32, torch.set_num_threads(T).

Mamba-2's SSD uses the quadratic (attention-like) form over the L = 8
positions by default (--ssd quadratic), which measured faster than the
sequential scan (--ssd scan) at the paper's sizes. Mamba-1's selective scan
(its quadratic form would need [B, Di, N, L, L]) is by default a
torch.autograd.Function with a hand-written backward (--scan custom,
SelectiveScan below): the batch in blocks of --block sequences whose
states stay in cache, the backward recomputing a block's states and
walking t = L-1..0, preallocated buffers updated in place. --scan ref is
the plain port of mamba_ssm's selective_scan_ref, a loop over t with the
state [B, Di, N] under autograd, which keeps every step's intermediates.
The math follows t/torch_ref.py (mamba_ssm's reference).

Usage: torch_bench.py [--arch mamba1|mamba2] [--layers N] [--batch B]
       [--length L] [--threads T] [--steps S] [--ssd quadratic|scan]
       [--conv conv1d|shifted] [--scan custom|ref] [--block S]
       torch_bench.py --check
Prints a summary and one 'RESULT key=value ...' line like achilles bench:
impl is torch-CONV for the default variant (ssd quadratic, scan custom),
torch-CONV-VARIANT for the other (e.g. torch-shifted-ref); variant= names
it. --check compares the custom scan with the loop under autograd in
float64 (outputs and every gradient, of the scan, a mixer and a 2-layer
LM, to 1e-10 relative; gradcheck and central differences on the scan) and
exits 1 if anything disagrees.
"""
import argparse
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

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


def selective_scan_loop(u, delta, A, Bm, Cm, D):
    """The plain port of mamba_ssm's selective_scan_ref (its math, this
    script's [batch, L, channels] layout) under autograd: a loop over t
    with the state h [B, Di, N]. u, delta [B, L, Di]; A [Di, N]; Bm, Cm
    [B, L, N]; D [Di] -> y [B, L, Di]. Autograd keeps every step's
    exp(delta A), h and products for the backward."""
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    ys = []
    for t in range(u.shape[1]):
        dt = delta[:, t, :, None]                                # [B, Di, 1]
        h = torch.exp(dt * A) * h + (dt * u[:, t, :, None]) * Bm[:, t, None, :]
        ys.append(torch.einsum("bdn,bn->bd", h, Cm[:, t]))
    return torch.stack(ys, 1) + u * D


_WORK = {}


def _work(name, shape, like):
    """A preallocated scratch buffer, reused across calls and layers (the
    scan's forward and backward never run two at a time)."""
    n = math.prod(shape)
    buf = _WORK.get(name)
    if buf is None or buf.dtype != like.dtype or buf.numel() < n:
        buf = _WORK[name] = torch.empty(n, dtype=like.dtype)
    return buf[:n].view(shape)


class SelectiveScan(torch.autograd.Function):
    """The same scan as selective_scan_loop with a hand-written backward.

    h_t = exp(delta_t A) * h_{t-1} + (delta_t u_t) B_t,  y_t = h_t . C_t + D u_t

    The batch goes in blocks of `block` sequences so that a block's states
    ([block, Di, N] per step) stay in cache. Forward: per block, one running
    state in a reused buffer; nothing of size [B, L, Di, N] is kept, only
    the inputs. Backward: per block, the forward again keeping each step's
    a_t = exp(delta_t A) and p_t = a_t h_{t-1} (2 L [block, Di, N] buffers,
    reused), with dC_t = dy_t h_t on the way; then t = L-1..0 with
    g = dL/dh_t:
      g = a_{t+1} g + dy_t (x) C_t
      d(delta u)_t = g B_t,  dB_t = (delta_t u_t) g
      r = g p_t (dL/d(delta_t A)): d delta_t += r . A,  dA += delta_t r
    and at the end d delta += d(delta u) u, du = d(delta u) delta + D dy,
    dD = sum dy u. Buffers are preallocated and updated in place; the
    contractions are a multiply into scratch and a sum (torch.bmm goes to
    the BLAS one small matrix at a time, and Debian's python3-torch links
    the reference BLAS)."""

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, D, block):
        u, delta, Bm, Cm = u.contiguous(), delta.contiguous(), Bm.contiguous(), Cm.contiguous()
        Bsz, L, Di = u.shape
        N = A.shape[1]
        bs = max(1, min(block, Bsz))
        du = delta * u                                           # delta_t u_t [B, L, Di]
        y = torch.empty_like(u)
        h = _work("h", (bs, Di, N), u)
        a = _work("a", (bs, Di, N), u)
        for b0 in range(0, Bsz, bs):
            n = min(bs, Bsz - b0)
            hb, ab = h[:n], a[:n]
            dl, dub, Bb, Cb = delta[b0:b0 + n], du[b0:b0 + n], Bm[b0:b0 + n], Cm[b0:b0 + n]
            for t in range(L):
                if t == 0:                                       # h_{-1} = 0
                    torch.mul(dub[:, 0, :, None], Bb[:, 0, None, :], out=hb)
                else:
                    torch.mul(dl[:, t, :, None], A, out=ab)
                    ab.exp_()
                    hb.mul_(ab).addcmul_(dub[:, t, :, None], Bb[:, t, None, :])
                torch.sum(torch.mul(hb, Cb[:, t, None, :], out=ab), -1, out=y[b0:b0 + n, t])
        y.addcmul_(u, D)
        ctx.block = bs
        ctx.save_for_backward(u, delta, A, Bm, Cm, D)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        u, delta, A, Bm, Cm, D = ctx.saved_tensors
        dy = dy.contiguous()
        Bsz, L, Di = u.shape
        N = A.shape[1]
        bs = ctx.block
        du_ = delta * u
        d_du = torch.empty_like(u)                               # dL/d(delta_t u_t)
        d_dA = torch.empty_like(u)                               # r . A per (b, t, d)
        dB, dC = torch.empty_like(Bm), torch.empty_like(Cm)
        P = _work("P", (L, bs, Di, N), u)                        # p_t = a_t h_{t-1} (P[0] unused)
        E = _work("E", (L, bs, Di, N), u)                        # a_t (E[0] unused)
        h = _work("h", (bs, Di, N), u)
        g = _work("g", (bs, Di, N), u)
        r = _work("r", (bs, Di, N), u)
        W = _work("W", (bs, Di, N), u).zero_()                   # sum over t of delta_t r
        for b0 in range(0, Bsz, bs):
            n = min(bs, Bsz - b0)
            hb, gb, rb = h[:n], g[:n], r[:n]
            dl, dub, Bb, Cb, dyb = (delta[b0:b0 + n], du_[b0:b0 + n], Bm[b0:b0 + n], Cm[b0:b0 + n],
                                    dy[b0:b0 + n])
            for t in range(L):                                   # the block's forward again
                if t == 0:
                    torch.mul(dub[:, 0, :, None], Bb[:, 0, None, :], out=hb)
                else:
                    Et, Pt = E[t, :n], P[t, :n]
                    torch.mul(dl[:, t, :, None], A, out=Et)
                    Et.exp_()
                    torch.addcmul(torch.mul(hb, Et, out=Pt), dub[:, t, :, None], Bb[:, t, None, :], out=hb)
                torch.sum(torch.mul(hb, dyb[:, t, :, None], out=rb), 1, out=dC[b0:b0 + n, t])
            for t in range(L - 1, -1, -1):                       # reverse scan
                if t == L - 1:
                    torch.mul(dyb[:, t, :, None], Cb[:, t, None, :], out=gb)
                else:
                    gb.mul_(E[t + 1, :n]).addcmul_(dyb[:, t, :, None], Cb[:, t, None, :])
                torch.sum(torch.mul(gb, Bb[:, t, None, :], out=rb), -1, out=d_du[b0:b0 + n, t])
                torch.sum(torch.mul(gb, dub[:, t, :, None], out=rb), 1, out=dB[b0:b0 + n, t])
                if t == 0:
                    d_dA[b0:b0 + n, 0] = 0
                else:
                    torch.mul(gb, P[t, :n], out=rb)
                    W[:n].addcmul_(rb, dl[:, t, :, None])
                    torch.sum(rb.mul_(A), -1, out=d_dA[b0:b0 + n, t])
        ddelta = d_dA.addcmul_(d_du, u)
        du = d_du.mul_(delta).addcmul_(dy, D)
        dA = W.sum(0)
        dD = (dy * u).sum((0, 1))
        return du, ddelta, dA, dB, dC, dD, None


class Mamba1(nn.Module):
    def __init__(self, D, N, K, expand, dt_rank, scan="custom", block=16):
        super().__init__()
        Di = expand * D
        self.Di, self.N, self.R, self.scan, self.block = Di, N, dt_rank, scan, block
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
        if self.scan == "ref":
            y = selective_scan_loop(u, delta, A, Bm, Cm, self.D)
        else:
            y = SelectiveScan.apply(u, delta, A, Bm, Cm, self.D, self.block)
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
    def __init__(self, arch, layers, D=32, N=128, K=4, expand=2, P=64, V=201, ssd="quadratic",
                 scan="custom", block=16):
        super().__init__()
        self.embedding = nn.Embedding(V, D)
        self.norms = nn.ModuleList(RMSNorm(D) for _ in range(layers))
        if arch == "mamba1":
            self.mixers = nn.ModuleList(Mamba1(D, N, K, expand, math.ceil(D / 16), scan, block)
                                        for _ in range(layers))
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


def check():
    """--check: the custom scan against autograd on the plain loop, float64.
    Every compared tensor must agree to 1e-10 relative (max |diff| over
    max |reference|); the Function's Jacobian also goes through
    torch.autograd.gradcheck and against central differences. Exit status 1
    on any failure."""
    global CONV
    torch.manual_seed(0)
    dt = torch.float64
    tol = 1e-10
    worst = [0.0, ""]
    fails = []

    def cmp(name, got, want):
        d = (got - want).abs().max().item() if got.numel() else 0.0
        m = want.abs().max().item() if want.numel() else 0.0
        rel = d / m if m > 0 else d
        ok = rel <= tol
        if not ok:
            fails.append(name)
        if not rel <= worst[0]:
            worst[:] = [rel, name]
        print(f"  {name:<44} max |diff| {d:.2e}  relative {rel:.2e}{'' if ok else '  FAIL'}")

    def scan_inputs(Bsz, L, Di, N):
        return [torch.randn(Bsz, L, Di, dtype=dt), F.softplus(torch.randn(Bsz, L, Di, dtype=dt)),
                -torch.exp(0.5 * torch.randn(Di, N, dtype=dt)), torch.randn(Bsz, L, N, dtype=dt),
                torch.randn(Bsz, L, N, dtype=dt), torch.randn(Di, dtype=dt)]

    names = ["y", "du", "ddelta", "dA", "dB", "dC", "dD"]
    print("SelectiveScan vs selective_scan_loop under autograd (float64, Di 6, N 3):")
    for Bsz, L, blocks in ((2, 5, (1, 2, 64)), (3, 5, (2,)), (2, 1, (1,))):
        ins = [x.requires_grad_() for x in scan_inputs(Bsz, L, 6, 3)]
        w = torch.randn(Bsz, L, 6, dtype=dt)
        y0 = selective_scan_loop(*ins)
        want = [y0] + list(torch.autograd.grad((y0 * w).sum(), ins))
        for blk in blocks:
            y1 = SelectiveScan.apply(*ins, blk)
            got = [y1] + list(torch.autograd.grad((y1 * w).sum(), ins))
            for nm, a, b in zip(names, got, want):
                cmp(f"B {Bsz} L {L} block {blk}: {nm}", a, b)

    print("SelectiveScan's Jacobian (B 2, L 5, Di 6, N 3, float64):")
    for Bsz, blk in ((2, 1), (3, 2)):
        ins = [x.requires_grad_() for x in scan_inputs(Bsz, 5, 6, 3)]

        def f(*x):
            return SelectiveScan.apply(*x, blk)
        ok = torch.autograd.gradcheck(f, ins, eps=1e-6, atol=1e-8, rtol=1e-8, raise_exception=False)
        print(f"  B {Bsz} block {blk}: torch.autograd.gradcheck (eps 1e-6, atol 1e-8, rtol 1e-8): "
              f"{'pass' if ok else 'FAIL'}")
        if not ok:
            fails.append(f"gradcheck B {Bsz} block {blk}")
        jac = torch.autograd.functional.jacobian(f, tuple(ins))
        dmax = 0.0
        with torch.no_grad():
            for i, x in enumerate(ins):
                flat = x.view(-1)
                for j in range(flat.numel()):
                    v = flat[j].item()
                    flat[j] = v + 1e-6
                    yp = f(*ins)
                    flat[j] = v - 1e-6
                    ym = f(*ins)
                    flat[j] = v
                    num = (yp - ym) / 2e-6
                    dmax = max(dmax, (jac[i].reshape(num.numel(), -1)[:, j] - num.reshape(-1)).abs().max().item())
        print(f"  B {Bsz} block {blk}: max |analytic - central difference (eps 1e-6)| over the Jacobian {dmax:.2e}"
              f"{'' if dmax <= 1e-8 else '  FAIL'}")
        if dmax > 1e-8:
            fails.append(f"finite differences B {Bsz} block {blk}")

    for conv in ("conv1d", "shifted"):
        CONV = conv
        print(f"Mamba-1 mixer, custom scan vs the loop (float64, D 3, Di 6, N 3, K 4, B 2, L 5, conv {conv}):")
        ref = Mamba1(3, 3, 4, 2, 1, scan="ref").double()
        with torch.no_grad():
            for prm in ref.parameters():
                prm.add_(0.3 * torch.randn_like(prm))
        fn = Mamba1(3, 3, 4, 2, 1, scan="custom", block=1).double()
        fn.load_state_dict(ref.state_dict())
        hs = torch.randn(2, 5, 3, dtype=dt)
        w = torch.randn(2, 5, 3, dtype=dt)
        res = []
        for m in (fn, ref):
            x = hs.clone().requires_grad_()
            out = m(x)
            gr = torch.autograd.grad((out * w).sum(), [x] + list(m.parameters()))
            res.append([out] + list(gr))
        pn = ["out", "d hidden"] + [f"d {nm}" for nm, _ in ref.named_parameters()]
        for nm, a, b in zip(pn, *res):
            cmp(nm, a, b)
        print(f"LM, 2 Mamba-1 layers, custom scan vs the loop (float64, vocabulary 11, conv {conv}):")
        lms = [LM("mamba1", 2, D=3, N=3, expand=2, V=11, scan=sc, block=1).double() for sc in ("custom", "ref")]
        with torch.no_grad():
            for prm in lms[1].parameters():
                prm.add_(0.3 * torch.randn_like(prm))
        lms[0].load_state_dict(lms[1].state_dict())
        tok = torch.randint(0, 11, (2, 5))
        lab = torch.randint(0, 11, (2,))
        res = []
        for m in lms:
            logits = m(tok)
            res.append([logits] + list(torch.autograd.grad(F.cross_entropy(logits, lab), list(m.parameters()))))
        pn = ["logits"] + [f"d {nm}" for nm, _ in lms[1].named_parameters()]
        for nm, a, b in zip(pn, *res):
            cmp(nm, a, b)
    if fails:
        print(f"check: FAILED {len(fails)}: {', '.join(fails)}")
        return 1
    print(f"check: pass; every comparison within {tol:g} relative (largest {worst[0]:.2e}: {worst[1]})")
    return 0


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
    ap.add_argument("--scan", default="custom", choices=["custom", "ref"],
                    help="Mamba-1's selective scan: custom (autograd.Function, hand-written backward) "
                         "or ref (selective_scan_ref's loop under autograd)")
    ap.add_argument("--block", type=int, default=16, help="sequences per block of the custom scan")
    ap.add_argument("--check", action="store_true",
                    help="check the custom scan against the loop in float64 and exit")
    a = ap.parse_args()
    if a.check:
        raise SystemExit(check())
    if a.block < 1:
        ap.error("--block: want 1 or more")
    global CONV
    CONV = a.conv
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = LM(a.arch, a.layers, ssd=a.ssd, scan=a.scan, block=a.block)
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
    if a.arch == "mamba1":
        variant, default = a.scan, "custom"
        form = f"scan {a.scan}" + (f" (blocks of {a.block})" if a.scan == "custom" else "")
    else:
        variant, default = a.ssd, "quadratic"
        form = f"ssd {a.ssd}"
    impl = f"torch-{a.conv}" + ("" if variant == default else f"-{variant}")
    print(f"torch {torch.__version__}: {a.arch}, {a.layers} layers, batch {a.batch} x {a.length}, "
          f"{torch.get_num_threads()} threads, {form}, conv {a.conv}, {nparams} parameters")
    print(f"  step {1e3 * per:.2f} ms over {a.steps} steps; loss {loss:.4f}")
    print(f"  training sequences/s: {a.batch / per:.0f}")
    print(f"  {flops * 1e-9:.3f} GFLOP/step, achieved {flops * 1e-9 / per:.1f} GFLOP/s")
    print(f"  peak memory (ru_maxrss): {rss:.0f} MiB")
    print(f"RESULT impl={impl} variant={variant} conv={a.conv} arch={a.arch} layers={a.layers} batch={a.batch} length={a.length} "
          f"threads={torch.get_num_threads()} step_ms={1e3 * per:.3f} seq_per_s={a.batch / per:.1f} "
          f"gflops={flops * 1e-9 / per:.2f} maxrss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
