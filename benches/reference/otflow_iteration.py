"""Times the authors' OT-Flow PyTorch code, for `cargo xtask bench torch-parity`.

Usage: python3 otflow_iteration.py --otflow-repo PATH --d 63 --m 128 --batch 256 --nt 16 --reps 3 --threads 2
       python3 otflow_iteration.py --otflow-repo PATH --case phi --d 63 --m 512 --batch 512 --reps 3
PATH is a checkout of https://github.com/EmoryMLIP/OT-Flow (its code is imported from there, never copied).
--case iteration (default): one training iteration, OTFlowProblem forward + backward + Adam step.
--case phi: Φ(x, t), (∇Φ, ΔΦ) = Phi.trHess(x), loss = ΣΦ + Σ‖∇Φ‖² + ΣΔΦ, backward to every parameter.
--case rk4-step: one stepRK4 of OT-Flow's augmented dynamics (odefun: x, log-det, L, HJB) from
  t = 0 to 1/nt, loss = the sum of every entry of the new state, backward to every parameter.
--autocast bf16|f16 runs each forward under torch.autocast("cpu", dtype) (the mixed-precision
baseline of "Mixed Precision Training of Neural ODEs": 16-bit matmuls, backward outside autocast).
Prints one JSON line: median and min seconds per repetition.
"""
import argparse
import contextlib
import json
import statistics
import sys
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--otflow-repo", required=True)
p.add_argument("--d", type=int, required=True)
p.add_argument("--m", type=int, required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--case", choices=["iteration", "phi", "rk4-step"], default="iteration")
p.add_argument("--nt", type=int, default=16)
p.add_argument("--alph", default="1.0,2000.0,800.0")
p.add_argument("--reps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--autocast", choices=["none", "bf16", "f16"], default="none")
a = p.parse_args()

sys.path.insert(0, a.otflow_repo)
from src.OTFlowProblem import OTFlowProblem, odefun, stepRK4  # noqa: E402
from src.Phi import Phi  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(0)
alph = [float(v) for v in a.alph.split(",")]
net = Phi(nTh=2, m=a.m, d=a.d, alph=alph)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x = torch.randn(a.batch, a.d)
xt = torch.cat([x, torch.full((a.batch, 1), 0.3)], dim=1)


def forward_precision():
    """The forward's precision context: autocast to 16 bits, or plain f32."""
    if a.autocast == "none":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16 if a.autocast == "bf16" else torch.float16)


def iteration():
    opt.zero_grad()
    with forward_precision():
        loss, costs = OTFlowProblem(x, net, [0, 1], nt=a.nt, stepper="rk4", alph=alph)
    loss.float().backward()
    opt.step()


def phi():
    net.zero_grad(set_to_none=True)
    with forward_precision():
        grad, lap = net.trHess(xt)
        loss = net(xt).sum() + grad.pow(2).sum() + lap.sum()
    loss.float().backward()


def rk4_step():
    net.zero_grad(set_to_none=True)
    z = torch.nn.functional.pad(x, (0, 3, 0, 0), value=0)
    with forward_precision():
        total = stepRK4(odefun, z, net, alph, 0.0, 1.0 / a.nt).sum()
    total.float().backward()


cases = {"iteration": iteration, "phi": phi, "rk4-step": rk4_step}
times = []
for r in range(a.reps + 1):
    t0 = time.perf_counter()
    cases[a.case]()
    times.append(time.perf_counter() - t0)
times = times[1:]  # the first run warms up
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "torch": torch.__version__, "threads": torch.get_num_threads(), "autocast": a.autocast}))
