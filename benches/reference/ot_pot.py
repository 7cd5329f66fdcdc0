"""Solves the same OT problems with POT, for `cargo xtask bench ot-couplings`.

Usage: python3 ot_pot.py --cost cost.npy --eps 0.05 --tol 1e-6 --reps 5
The cost matrix (n, m) is read from the .npy file the suite wrote; weights are uniform. Runs
ot.sinkhorn with method='sinkhorn_log' (log domain, like continuum's), ot.sinkhorn with the
default method (the one torchcfm's OTPlanSampler calls) and ot.emd (exact, network simplex,
with numItermax raised to 10^8: at its default 10^5 it stops before optimality from n ≈ 4000 on
and returns a dearer plan; the result code is reported).
Prints one JSON line: per method the transport cost <C, P>, the marginal error as continuum
reports it (max-abs over both marginals), the iteration count where POT reports it, and the
median/min seconds per call.
"""
import argparse
import json
import statistics
import time
import warnings

import numpy as np
import ot

p = argparse.ArgumentParser()
p.add_argument("--cost", required=True)
p.add_argument("--eps", type=float, default=0.05)
p.add_argument("--tol", type=float, default=1e-6)
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()

M = np.load(a.cost).astype(np.float64)
n, m = M.shape
wa, wb = np.full(n, 1.0 / n), np.full(m, 1.0 / m)


def timed(solve):
    solve()
    times = []
    for _ in range(a.reps):
        start = time.perf_counter()
        plan, log = solve()
        times.append(time.perf_counter() - start)
    err = max(np.abs(plan.sum(1) - wa).max(), np.abs(plan.sum(0) - wb).max())
    out = {"cost": float((plan * M).sum()), "marginal_error": float(err), "median_s": statistics.median(times), "min_s": min(times)}
    if log is not None and "niter" in log:
        out["iterations"] = int(log["niter"])
    if log is not None and "result_code" in log:
        out["result_code"] = int(log["result_code"])
    return out


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = {
        "pot": ot.__version__,
        "n": n,
        "sinkhorn_log": timed(lambda: ot.sinkhorn(wa, wb, M, a.eps, method="sinkhorn_log", stopThr=a.tol, numItermax=10000, log=True)),
        "sinkhorn": timed(lambda: ot.sinkhorn(wa, wb, M, a.eps, stopThr=a.tol, numItermax=10000, log=True)),
        "emd": timed(lambda: ot.emd(wa, wb, M, numItermax=100_000_000, log=True)),
    }
print(json.dumps(result))
