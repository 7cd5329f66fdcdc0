"""Times one forward+backward pass of a tanh MLP on (x, t) in PyTorch, for `cargo xtask bench torch-parity`.

Usage: python3 mlp_fwd_bwd.py --d 63 --width 512 --batch 512 --reps 20 --threads 2
Network: Linear(d + 1, w), tanh, Linear(w, w), tanh, Linear(w, d) on cat([x, t]) — continuum's
`Mlp` (time concatenated at the input). Loss: sum of squared outputs; backward to all parameters
(no optimiser step). --autocast bf16|f16 runs the forward under torch.autocast("cpu", dtype)
(16-bit matmuls with f32 accumulation; backward outside autocast). Prints one JSON line with
median/min seconds.
"""
import argparse
import json
import statistics
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--d", type=int, default=63)
p.add_argument("--width", type=int, default=512)
p.add_argument("--batch", type=int, default=512)
p.add_argument("--reps", type=int, default=20)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--autocast", choices=["none", "bf16", "f16"], default="none")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(a.d + 1, a.width), torch.nn.Tanh(), torch.nn.Linear(a.width, a.width), torch.nn.Tanh(), torch.nn.Linear(a.width, a.d))
x = torch.randn(a.batch, a.d)
t = torch.full((a.batch, 1), 0.3)
times = []
for rep in range(a.reps + 3):
    start = time.perf_counter()
    net.zero_grad(set_to_none=True)
    if a.autocast == "none":
        loss = net(torch.cat([x, t], dim=-1)).pow(2).sum()
    else:
        with torch.autocast("cpu", dtype=torch.bfloat16 if a.autocast == "bf16" else torch.float16):
            loss = net(torch.cat([x, t], dim=-1)).float().pow(2).sum()
    loss.backward()
    if rep >= 3:
        times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "torch": torch.__version__, "autocast": a.autocast}))
