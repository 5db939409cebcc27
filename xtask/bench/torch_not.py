"""PyTorch reference for `cargo xtask bench`: the same T (3D UNet) and f (3D ResNet
potential) as ot3d's models crate, the same NOT losses and Adam updates, timed the same
way (median of --reps steps after --warmup), on the CPU or a CUDA GPU (--device cuda).
Prints one JSON object on stdout."""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SLOPE = 0.2
RESIDUAL_SCALE = 0.1


def conv3(cin, cout, stride=1):
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=1)


class TransportMap(nn.Module):
    """models/src/nets/transport.rs: widths w·2^level, stride-2 downs, nearest-neighbour
    upsampling, skips concatenated, zero-initialized 1x1 head, output x + head(h)."""

    def __init__(self, width, depth):
        super().__init__()
        widths = [width << level for level in range(depth + 1)]
        self.down = nn.ModuleList([nn.ModuleList([conv3(3, widths[0]), conv3(widths[0], widths[0])])])
        for level in range(1, depth + 1):
            self.down.append(
                nn.ModuleList([conv3(widths[level - 1], widths[level], 2), conv3(widths[level], widths[level])])
            )
        self.up = nn.ModuleList(
            [
                nn.ModuleList([conv3(widths[level + 1], widths[level]), conv3(2 * widths[level], widths[level])])
                for level in reversed(range(depth))
            ]
        )
        self.out = nn.Conv3d(widths[0], 3, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        skips, h = [], x
        for conv_in, conv in self.down:
            h = F.leaky_relu(conv_in(h), SLOPE)
            h = F.leaky_relu(conv(h), SLOPE)
            skips.append(h)
        skips.pop()
        for conv_up, conv_merge in self.up:
            skip = skips.pop()
            h = F.leaky_relu(conv_up(F.interpolate(h, scale_factor=2, mode="nearest")), SLOPE)
            h = F.leaky_relu(conv_merge(torch.cat([h, skip], 1)), SLOPE)
        return x + self.out(h)


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv_0 = nn.Conv3d(cin, cout, 3, padding=1)
        self.conv_1 = nn.Conv3d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv3d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x):
        dx = self.conv_0(F.leaky_relu(x, SLOPE))
        dx = self.conv_1(F.leaky_relu(dx, SLOPE))
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        return shortcut + RESIDUAL_SCALE * dx


class Potential(nn.Module):
    """models/src/nets/potential.rs: conv_in, stages+1 residual blocks with 2x average
    pooling between them, leaky ReLU and a linear head to one number."""

    def __init__(self, width, stages):
        super().__init__()
        widths = [width << min(s, 3) for s in range(stages + 1)]
        self.conv_in = nn.Conv3d(3, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(widths[max(s - 1, 0)], widths[s]) for s in range(stages + 1)])
        side = 16 >> stages
        self.head = nn.Linear(widths[stages] * side**3, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i, block in enumerate(self.blocks):
            if i > 0:
                h = F.avg_pool3d(h, 2)
            h = block(h)
        return self.head(F.leaky_relu(h, SLOPE).flatten(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sgemm", type=int, help="time an N×N matmul instead of the steps")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--t-width", type=int)
    parser.add_argument("--t-depth", type=int, default=2)
    parser.add_argument("--f-width", type=int)
    parser.add_argument("--f-stages", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: this PyTorch sees no CUDA GPU")
        # Plain f32 on both sides: TF32 tensor cores would compare a 10-bit mantissa to f32.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = "cpu"

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if args.sgemm:
        n = args.sgemm
        a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
        a @ b
        sync()
        ms = []
        for _ in range(args.reps):
            started = time.perf_counter()
            a @ b
            sync()
            ms.append((time.perf_counter() - started) * 1000.0)
        gflops = 2 * n**3 / (statistics.median(ms) / 1000) / 1e9
        print(json.dumps({"size": n, "ms": ms, "gflops": gflops, "device": device_name}))
        return
    if None in (args.batch, args.t_width, args.f_width):
        parser.error("--batch, --t-width and --f-width are required (or --sgemm N)")
    t = TransportMap(args.t_width, args.t_depth).to(device)
    f = Potential(args.f_width, args.f_stages).to(device)
    opt_t = torch.optim.Adam(t.parameters(), lr=1e-4, betas=(0.9, 0.999))
    opt_f = torch.optim.Adam(f.parameters(), lr=1e-4, betas=(0.9, 0.999))
    shape = (args.batch, 3, 16, 16, 16)
    # Digit-like inputs: sparse values in [0, 1] (the timing does not depend on them).
    batch = lambda: (torch.rand(shape, device=device) > 0.85).float() * torch.rand(shape, device=device)

    def f_step():
        x, y = batch(), batch()
        with torch.no_grad():
            t_x = t(x)
        loss = f(t_x).mean() - f(y).mean()
        opt_f.zero_grad(set_to_none=True)
        loss.backward()
        opt_f.step()
        return loss.item()

    def t_step():
        x = batch()
        for p in f.parameters():
            p.requires_grad_(False)
        t_x = t(x)
        cost = (x - t_x).pow(2).mean()
        loss = cost - f(t_x).mean()
        opt_t.zero_grad(set_to_none=True)
        loss.backward()
        opt_t.step()
        for p in f.parameters():
            p.requires_grad_(True)
        return loss.item()

    def timed(step):
        for _ in range(args.warmup):
            step()
        times = []
        sync()
        for _ in range(args.reps):
            started = time.perf_counter()
            step()
            sync()
            times.append((time.perf_counter() - started) * 1000.0)
        return times

    t_ms = timed(t_step)
    f_ms = timed(f_step)
    print(
        json.dumps(
            {
                "framework": f"pytorch {torch.__version__}",
                "device": device_name,
                "threads": torch.get_num_threads(),
                "t_step_ms": t_ms,
                "f_step_ms": f_ms,
                "t_step_median_ms": statistics.median(t_ms),
                "f_step_median_ms": statistics.median(f_ms),
                "t_params": sum(p.numel() for p in t.parameters()),
                "f_params": sum(p.numel() for p in f.parameters()),
                # Linux reports ru_maxrss in KiB.
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
