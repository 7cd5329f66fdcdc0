"""Times one I-CFM training step in PyTorch at torchcfm's 2-D protocol, for `cargo xtask bench fm-diffusion`.

Usage: python3 cfm_step.py --batch 512 --width 64 --reps 50 --threads 2
Network: torchcfm.models.MLP(dim=2, w=64, time_varying=True) — Linear/SELU ×3, Linear — built from the
torchcfm package when it is installed, else the same layers written with torch.nn. Loss: torchcfm's
ConditionalFlowMatcher(sigma=0.1) when installed, else its formula x_t = t x1 + (1-t) x0 + 0.1 eps,
u_t = x1 - x0. Optimiser: torch.optim.AdamW(lr=1e-3). Prints one JSON line with median/min seconds per step.
"""
import argparse
import json
import statistics
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=512)
p.add_argument("--width", type=int, default=64)
p.add_argument("--reps", type=int, default=50)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

try:
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
    from torchcfm.models.models import MLP

    net = MLP(dim=2, w=a.width, time_varying=True)
    fm = ConditionalFlowMatcher(sigma=0.1)
    source = "torchcfm package"

    def sample_xt(x0, x1):
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        return t, xt, ut
except ImportError:
    w = a.width
    net = torch.nn.Sequential(
        torch.nn.Linear(3, w), torch.nn.SELU(), torch.nn.Linear(w, w), torch.nn.SELU(),
        torch.nn.Linear(w, w), torch.nn.SELU(), torch.nn.Linear(w, 2))
    source = "torch.nn (torchcfm not installed; same layers and loss formula)"

    def sample_xt(x0, x1):
        t = torch.rand(x0.shape[0])
        xt = t[:, None] * x1 + (1 - t[:, None]) * x0 + 0.1 * torch.randn_like(x0)
        return t, xt, x1 - x0

opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
x1_pool = torch.randn(8192, 2) * 3.0
times = []
for rep in range(a.reps + 5):
    start = time.perf_counter()
    x0 = torch.randn(a.batch, 2)
    x1 = x1_pool[torch.randint(0, 8192, (a.batch,))]
    t, xt, ut = sample_xt(x0, x1)
    vt = net(torch.cat([xt, t[:, None]], dim=-1))
    loss = torch.mean((vt - ut) ** 2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if rep >= 5:
        times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "torch": torch.__version__, "source": source}))
