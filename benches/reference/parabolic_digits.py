"""Side-by-side check for `ode-classifier`: rampde's STL-10 network (`paper/stl10/ode_stl10.py`:
ODEFunc = conv, ReLU, instance norm, conv_transpose with piecewise-constant weights; stem and
1x1 connectors with affine instance norm; RK4, 4 steps per block) written out in PyTorch and
trained on the shipped digits with rampde's recipe (SGD momentum 0.9, weight decay 1e-4,
cosine to 1e-4, |theta| <= 1, batch 16), as `cargo xtask bench stl10 --quick` trains continuum's.

Usage: python3 parabolic_digits.py WIDTH EPOCHS LR [UPSAMPLE]
  e.g. python3 parabolic_digits.py 8 10 0.05 2   (the quick preset: 16x16, width 8, 10 epochs)
Prints the validation accuracy per epoch and the final test accuracy (its own seeded 60/20/20
split, not continuum's stratified one: compare levels, not digits).
"""
import os, sys, gzip, numpy as np, torch, torch.nn as nn, torch.nn.functional as F, time
torch.manual_seed(0); torch.set_num_threads(1)
W = int(sys.argv[1]); EPOCHS = int(sys.argv[2]); LR = float(sys.argv[3]); UP = int(sys.argv[4]) if len(sys.argv) > 4 else 1
rows = np.loadtxt(gzip.open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../datasets/digits/digits.csv.gz'), 'rt'), delimiter=',')
X = rows[:, :64].reshape(-1, 1, 8, 8) / 16.0; y = rows[:, 64].astype(int)
if UP > 1: X = X.repeat(UP, 2).repeat(UP, 3)
rng = np.random.default_rng(0); idx = rng.permutation(len(y)); n = len(y)
tr, va, te = idx[: int(.6 * n)], idx[int(.6 * n): int(.8 * n)], idx[int(.8 * n):]
mu, sd = X[tr].mean(), X[tr].std()
X = torch.tensor((X - mu) / sd, dtype=torch.float32); y = torch.tensor(y)
class ODEFunc(nn.Module):
    def __init__(s, ch, n=4):
        super().__init__(); s.wb = nn.Parameter(torch.randn(n, ch, ch, 3, 3) * 0.1); s.bb = nn.Parameter(torch.zeros(n, ch)); s.n = n
    def forward(s, t, y):
        i = max(0, min(int(t * s.n + 1e-9), s.n - 1))
        z = F.conv2d(y, s.wb[i], s.bb[i], padding=1); z = F.instance_norm(F.relu(z), eps=1e-5)
        return -F.conv_transpose2d(z, s.wb[i], padding=1)
def rk4(f, y, n=4):
    h = 1.0 / n
    for k in range(n):
        t = k * h; k1 = f(t, y); k2 = f(t + h / 2, y + h / 2 * k1); k3 = f(t + h / 2, y + h / 2 * k2); k4 = f(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y
class Net(nn.Module):
    def __init__(s, ch):
        super().__init__()
        s.stem = nn.Conv2d(1, ch, 3, padding=1); s.n1 = nn.InstanceNorm2d(ch, affine=True)
        s.o1 = ODEFunc(ch); s.c1 = nn.Conv2d(ch, 2 * ch, 1); s.n3 = nn.InstanceNorm2d(2 * ch, affine=True)
        s.o2 = ODEFunc(2 * ch); s.c2 = nn.Conv2d(2 * ch, 4 * ch, 1); s.n4 = nn.InstanceNorm2d(4 * ch, affine=True)
        s.o3 = ODEFunc(4 * ch); s.fc = nn.Linear(4 * ch, 10)
    def forward(s, x):
        x = F.relu(s.n1(s.stem(x))); x = rk4(s.o1, x)
        x = F.avg_pool2d(F.relu(s.n3(s.c1(x))), 2); x = rk4(s.o2, x)
        x = F.avg_pool2d(F.relu(s.n4(s.c2(x))), 2); x = rk4(s.o3, x)
        return s.fc(x.mean((2, 3)))
net = Net(W); B = 16; per = (len(tr) + B - 1) // B; iters = EPOCHS * per
opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iters, eta_min=1e-4)
def acc(ids):
    with torch.no_grad(): return (net(X[ids]).argmax(1) == y[ids]).float().mean().item()
t0 = time.time()
for it in range(iters):
    b = torch.tensor(rng.choice(tr, B))
    xb = X[b]
    sh = rng.integers(-UP, UP + 1, size=2); xb = torch.roll(F.pad(xb, (UP, UP, UP, UP)), shifts=(int(sh[0]), int(sh[1])), dims=(2, 3))[:, :, UP:-UP, UP:-UP]
    loss = F.cross_entropy(net(xb), y[b]); opt.zero_grad(); loss.backward(); opt.step(); sch.step()
    with torch.no_grad():
        for p in net.parameters(): p.clamp_(-1, 1)
    if (it + 1) % per == 0: print(f"epoch {(it + 1) // per} loss {loss.item():.3f} val {acc(va):.3f}", flush=True)
print(f"W={W} epochs={EPOCHS} lr={LR} up={UP}: test acc {acc(te):.3f}, {(time.time() - t0) / iters * 1e3:.1f} ms/iter")
