"""Times NeuralSOC's own training iteration (train_100d.py's loop body), for `cargo xtask bench soc`.

Usage: python3 neuralsoc_100d.py --neuralsoc-repo PATH --prob 1 --sampler pmp --m 64 --batch 64 --nt 20 --iters 20 --threads 2
PATH is a checkout of https://github.com/EmoryMLIP/NeuralSOC (its code is imported from there, never copied;
BenchmarkProblem.py imports matplotlib). One iteration = fresh initial states, the sampler's rollout, every
loss term of loss.py (J, terminal, BSDE, HJB; β = train_100d.py's default 1,1,1,0,1,1), backward, Adam step,
with Phi_OTflow(nTh=4, m, d=100) as `--net ResNet_OTflow`.
Prints one JSON line: median and min seconds per iteration after one warm-up, peak resident memory (MB),
and Φ(0, 0) after the timed iterations.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--neuralsoc-repo", required=True)
p.add_argument("--prob", type=int, default=1)
p.add_argument("--sampler", choices=["pmp", "random-walk"], default="pmp")
p.add_argument("--m", type=int, default=64)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--nt", type=int, default=20)
p.add_argument("--iters", type=int, default=20)
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()

sys.path.insert(0, a.neuralsoc_repo)
from BenchmarkProblem import BenchmarkProblem  # noqa: E402
from Phi_OTflow import Phi_OTflow  # noqa: E402
from fsde import PMPSampler, RandomWalkSampler  # noqa: E402
from loss import bsde_penalty, control_obj, hjb_penalty, terminal_penalty  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(0)
prob = BenchmarkProblem(type=a.prob)
Phi = Phi_OTflow(a.layers, a.m, prob.d)
if a.sampler == "pmp":
    sampler = PMPSampler(Phi, prob, prob.t, prob.T, a.nt)
else:
    prob.L = lambda t, x, u: -torch.norm(u, dim=1, keepdim=True) ** 2
    sampler = RandomWalkSampler(prob, prob.t, prob.T, a.nt)
beta = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
optim = torch.optim.Adam(Phi.parameters(), lr=a.lr)


def iteration():
    x = prob.x_init(a.batch)
    optim.zero_grad()
    s, z, dw, Phiz, gradPhiz = sampler(x)
    J, L, G = control_obj(Phi, prob, s, z, gradPhiz)
    term_Phi, term_gradPhi = terminal_penalty(Phi, prob, s, z, dw, Phiz, gradPhiz)
    cBSDE = bsde_penalty(Phi, prob, s, z, dw, Phiz, gradPhiz)
    cHJB = hjb_penalty(Phi, prob, s, z, dw, Phiz, gradPhiz)
    Phi0 = Phi(s[0], x)
    cPhi = torch.mean(torch.abs(Phi0 - J))
    loss = beta[0] * cBSDE + beta[1] * term_Phi + beta[2] * term_gradPhi + beta[3] * cHJB + beta[4] * J + beta[5] * cPhi
    loss.backward()
    optim.step()


iteration()
times = []
for _ in range(a.iters):
    t0 = time.perf_counter()
    iteration()
    times.append(time.perf_counter() - t0)
with torch.no_grad():
    phi0 = Phi(0.0, torch.zeros(1, prob.d)).item()
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "phi0": phi0,
                  "torch": torch.__version__, "threads": a.threads}))
