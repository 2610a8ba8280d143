#!/usr/bin/env python3
"""AdamW + warmup/cosine schedule + clipping fixtures for the C optimizer.

    /usr/bin/python3 t/torch_optim.py make t/fixtures

Starting from the m1_tiny / m2_tiny checkpoints, runs S training steps in
float64 with torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and the
paper's schedule (linear warmup from lr_min to lr_max, cosine back to lr_min;
here one "epoch" per step so a few steps cover both phases), and writes
NAME.optim.safetensors: the batches, the learning rate, the loss (before the
update) and the gradient norm of every step, and the final weights. The
settings are in __metadata__. t/optim_f64.c replays them.
"""
import json
import math
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import torch_ref  # noqa: E402

SETTINGS = dict(lr_min=1e-3, lr_max=2e-2, warmup_epochs=2, total_epochs=5,
                beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, clip=0.5)
STEPS, B, L = 6, 4, 6


def lr_at(s, epoch):
    """The schedule, written independently of the C code."""
    if epoch < s["warmup_epochs"]:
        return s["lr_min"] + (s["lr_max"] - s["lr_min"]) * epoch / s["warmup_epochs"]
    x = min(1.0, (epoch - s["warmup_epochs"]) / (s["total_epochs"] - s["warmup_epochs"]))
    return s["lr_min"] + 0.5 * (s["lr_max"] - s["lr_min"]) * (1 + math.cos(math.pi * x))


def make(outdir, name):
    model, cfg = torch_ref.load_checkpoint(f"{outdir}/{name}.ckpt.safetensors")[:2]
    V = cfg["vocab_size"]
    s = SETTINGS
    params = [p for n, p in model.named_parameters()]  # the tied matrix once
    opt = torch.optim.AdamW(params, lr=s["lr_min"], betas=(s["beta1"], s["beta2"]),
                            eps=s["eps"], weight_decay=s["weight_decay"])
    g = torch.Generator().manual_seed(77)
    toks, labs, lrs, losses, norms = [], [], [], [], []
    for step in range(STEPS):
        tokens = torch.randint(0, V, (B, L), generator=g)
        labels = torch.randint(0, V, (B,), generator=g)
        lr = lr_at(s, step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tokens), labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, s["clip"])
        opt.step()
        toks.append(tokens)
        labs.append(labels)
        lrs.append(lr)
        losses.append(float(loss))
        norms.append(float(norm))
    out = {"tokens": torch.stack(toks).to(torch.int32).numpy(),
           "labels": torch.stack(labs).to(torch.int32).numpy(),
           "lr": torch.tensor(lrs, dtype=torch.float64).numpy(),
           "loss": torch.tensor(losses, dtype=torch.float64).numpy(),
           "gnorm": torch.tensor(norms, dtype=torch.float64).numpy()}
    for n, v in model.state_dict().items():
        if n != "lm_head.weight":
            out["w." + n] = v.detach().to(torch.float64).numpy()
    torch_ref.st_save(f"{outdir}/{name}.optim.safetensors", out,
                      {"settings": json.dumps(s), "steps": str(STEPS)})
    print(f"{name}: losses {['%.5f' % x for x in losses]} norms {['%.3f' % x for x in norms]}")


def main(argv):
    torch.set_default_dtype(torch.float64)
    if len(argv) != 3 or argv[1] != "make":
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for name in ("m1_tiny", "m2_tiny"):
        make(argv[2], name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
