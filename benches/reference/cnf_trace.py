"""Times a CNF's velocity with its exact trace, and the backward, in PyTorch, for `cargo xtask bench torch-parity`.

Usage: python3 cnf_trace.py --d 2 --width 64 --batch 1024 --reps 20 --threads 2
Network: FFJORD's toy velocity, concat-squash layers d → w → w → w → d with tanh between them,
  layer(a, t) = (a Wᵀ + b) · sigmoid(t g_w + g_b) + t h_w   (continuum's `ConcatSquashNet`).
Trace: FFJORD's brute-force divergence, tr ∂f/∂x = Σᵢ ∂fᵢ/∂xᵢ by d `autograd.grad` calls with
create_graph=True. Loss: Σ f² + Σ tr; backward to every parameter. Prints one JSON line with median/min seconds.
"""
import argparse
import json
import statistics
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--d", type=int, default=2)
p.add_argument("--width", type=int, default=64)
p.add_argument("--batch", type=int, default=1024)
p.add_argument("--reps", type=int, default=20)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


class ConcatSquash(torch.nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.layer = torch.nn.Linear(i, o)
        self.gate = torch.nn.Linear(1, o)
        self.hyper_bias = torch.nn.Linear(1, o, bias=False)

    def forward(self, t, x):
        return self.layer(x) * torch.sigmoid(self.gate(t)) + self.hyper_bias(t)


widths = [a.d, a.width, a.width, a.width, a.d]
layers = torch.nn.ModuleList(ConcatSquash(i, o) for i, o in zip(widths[:-1], widths[1:]))


def velocity(t, x):
    for k, layer in enumerate(layers):
        x = layer(t, x)
        if k + 1 < len(layers):
            x = torch.tanh(x)
    return x


x = torch.randn(a.batch, a.d)
t = torch.full((1, 1), 0.3)
times = []
for rep in range(a.reps + 3):
    start = time.perf_counter()
    layers.zero_grad(set_to_none=True)
    xr = x.clone().requires_grad_(True)
    f = velocity(t, xr)
    trace = sum(torch.autograd.grad(f[:, i].sum(), xr, create_graph=True)[0][:, i] for i in range(a.d))
    (f.pow(2).sum() + trace.sum()).backward()
    if rep >= 3:
        times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "torch": torch.__version__}))
