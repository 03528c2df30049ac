"""What every benchmark script prints about the machine it ran on."""
from __future__ import annotations

import os
import platform
import subprocess


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
