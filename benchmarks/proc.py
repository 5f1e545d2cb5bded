"""Run one command as a fresh process and measure it: wall time, CPU time, peak memory.

Wall time runs from just before the fork to the moment the process is reaped, so interpreter
start-up and imports count. CPU time and peak memory come from `os.wait4`, i.e. the kernel's
rusage of that process and of every descendant it waited for (the same numbers as
`/usr/bin/time -v`); `ru_maxrss` is the largest resident set of any single process in
that tree, which for an in-process run is the run itself.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    argv: list[str]
    returncode: int
    wall: float
    cpu: float  # user + system seconds of the process tree
    max_rss: int  # bytes
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 15) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


def run_measured(
    argv: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path, name: str,
    timeout: float = 1800.0,
) -> Measured:
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Measured(
        argv=argv,
        returncode=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss=usage.ru_maxrss * 1024,  # KiB on Linux
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


# Set by `--snapshot`: a frozen copy of the ml_assets package that every case imports instead
# of the working tree (which others may be editing while the benchmark runs).
CODE_PATH: str | None = None
# Set by `--threads N`: OMP_NUM_THREADS for every case (the fit's OpenMP threads), which makes
# wall times far less sensitive to other processes competing for the cores.
THREADS: int | None = None


def base_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would point a case at another home."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ML_ASSETS_", "DAGSTER_", "MLFLOW_"))}
    env.pop("PYTHONPATH", None)
    # Some shells (containers, CI images) set this; a user's machine keeps a bytecode cache,
    # and without it every case would compile ml_assets anew (benchmarks/run.py compiles it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if CODE_PATH:
        env["PYTHONPATH"] = CODE_PATH
    if THREADS:
        env["OMP_NUM_THREADS"] = str(THREADS)
    env["PYTHONHASHSEED"] = "0"
    env.update(extra)
    return env
