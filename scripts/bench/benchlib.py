"""What every benchmark script prints about the machine it ran on."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time


def machine_line() -> str:
    """``machine: N cores, CPU model, Python x.y.z, OS``."""
    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def load_line() -> str:
    """1-minute load average, and other processes using CPU: timings on a busy machine are not comparable."""
    la = os.getloadavg()[0]
    busy = []
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"], capture_output=True,
                             text=True, timeout=5).stdout.split("\n")
        me = {os.getpid(), os.getppid()}
        busy = [f"{c[:60]} ({p}%)" for pid, p, c in (l.split(None, 2) for l in out if l.strip())
                if float(p) >= 20 and int(pid) not in me]
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return f"load average (1 min): {la:.2f}" + (f"; other busy processes: {', '.join(busy)}" if busy else "")


def run_child(cmd, env) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process running ``cmd``; exits with its stderr if it fails."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{p.stderr.read().decode()[-2000:]}")
    return wall, ru.ru_maxrss / 1024


def ratio_table(rows: dict[str, list[tuple[float, float]]], n: int, base: str) -> None:
    """Print a markdown table of each row's median photos/s and peak RSS over its runs ((wall s, RSS MB)
    pairs for ``n`` photos), with ratios against the row ``base``."""
    print(f"| row | photos/s | peak RSS MB | photos/s vs {base} | RSS vs {base} |")
    print("|---|---|---|---|---|")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(m for _, m in v)) for k, v in rows.items()}
    for k, (w, m) in med.items():
        print(f"| {k} | {n / w:.1f} | {m:.0f} | {med[base][0] / w:.2f} | {m / med[base][1]:.2f} |")
