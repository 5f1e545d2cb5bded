"""The measured cases: (a) bare script, (b) `ml-assets run`, (c) a run launched into the code
location, plus the no-op run, import times and the sensor tick.

Every case is its own process started from here (benchmarks/proc.py measures it). (b) and (c)
each get a fresh working directory per measurement: their own `ml_assets.yaml`,
`ML_ASSETS_HOME`, `DAGSTER_HOME` (the `make dev` instance settings) and MLflow sqlite store,
created before the clock starts (`prepare_home` copies one initialised home), with the table in
the landing folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from benchmarks.data import PIPELINE_YAML
from benchmarks.proc import Measured, base_env, run_measured

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PYTHON = sys.executable
DEV_DAGSTER_YAML = ROOT / "deploy" / "dev" / "dagster.yaml"


class CaseFailed(RuntimeError):
    pass


def _check(m: Measured, what: str) -> Measured:
    if not m.ok:
        raise CaseFailed(f"{what} exited {m.returncode}:\n{m.tail()}")
    return m


def _json_line(text: str, prefix: str) -> dict:
    for line in reversed(text.splitlines()):
        if line.startswith(prefix + " "):
            return json.loads(line[len(prefix) + 1:])
    raise CaseFailed(f"no {prefix} line in:\n{text[-2000:]}")


def _figures(m: Measured) -> dict:
    return {"wall": round(m.wall, 3), "cpu": round(m.cpu, 3), "max_rss": m.max_rss}


# --------------------------------------------------------------------------- homes


class Home:
    """A fresh working directory with its own ML_ASSETS_HOME, DAGSTER_HOME and MLflow store."""

    def __init__(self, work: Path):
        self.work = work
        self.ml_home = work / ".ml_assets"
        self.dagster_home = work / ".dagster_home"
        self.landing = self.ml_home / "landing"
        self.logs = work / "logs"
        self.init_seconds: float | None = None

    @property
    def env(self) -> dict[str, str]:
        # Only what a user sets; MLflow's store defaults to sqlite under ML_ASSETS_HOME.
        return base_env(ML_ASSETS_HOME=str(self.ml_home), DAGSTER_HOME=str(self.dagster_home))

    def helper(self, command: str) -> dict:
        m = run_measured([PYTHON, str(HERE / "home.py"), command], env=self.env, cwd=self.work,
                         log_dir=self.logs, name=f"home_{command}")
        _check(m, f"benchmarks/home.py {command}")
        return _json_line(m.stdout, "HOME_RESULT")


# One initialised home per benchmark run, copied for every case: the same empty Dagster
# instance and MLflow store each time, without paying their creation (seconds) per case.
_TEMPLATE: dict[str, Path | float] = {}


def _template(parent: Path) -> tuple[Path, float]:
    if "path" not in _TEMPLATE:
        home = Home(parent / "template_home")
        if home.work.exists():
            shutil.rmtree(home.work)
        home.landing.mkdir(parents=True)
        home.dagster_home.mkdir(parents=True)
        (home.work / "ml_assets.yaml").write_text(PIPELINE_YAML)
        shutil.copyfile(DEV_DAGSTER_YAML, home.dagster_home / "dagster.yaml")
        _TEMPLATE["path"] = home.work
        _TEMPLATE["seconds"] = home.helper("init")["seconds"]
        shutil.rmtree(home.logs, ignore_errors=True)
    return _TEMPLATE["path"], _TEMPLATE["seconds"]


def prepare_home(work: Path, table: Path | None) -> Home:
    """A fresh copy of the initialised template home, with `table` in its landing folder."""
    template, seconds = _template(work.parent)
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, work)
    home = Home(work)
    home.init_seconds = seconds
    if table is not None:
        landed = home.landing / table.name
        shutil.copyfile(table, landed)
        # A file that landed a minute ago, as files do before a run: a fresh copy would sit in
        # ml-assets run's settle window (ML_ASSETS_SETTLE_SECONDS, files still being written)
        # and (b) would time that wait.
        a_minute_ago = time.time() - 60
        os.utime(landed, (a_minute_ago, a_minute_ago))
    return home


def _run_breakdown(home: Home, m: Measured) -> dict:
    """Where the wall time went, from the run's own record in the instance."""
    stats = home.helper("stats")
    if not stats.get("run_id"):
        return {}
    steps = {s["step"]: s["seconds"] for s in stats["steps"]}
    step_sum = sum(v for v in steps.values() if v)
    run_seconds = stats["run_seconds"] or 0.0
    return {
        "run_id": stats["run_id"],
        "run_status": stats["status"],
        "run_seconds": run_seconds,  # run start -> run end as recorded by Dagster
        "steps": steps,
        "step_seconds": round(step_sum, 3),
        "between_steps": round(run_seconds - step_sum, 3),
        "outside_run": round(m.wall - run_seconds, 3),  # start-up, imports, set-up, teardown
        "events": stats["events"],
    }


# --------------------------------------------------------------------------- (a) (b) (c)


def _run_bare(table: Path, work: Path, log_dir: Path, name: str, *extra: str) -> dict:
    m = run_measured([PYTHON, str(HERE / "bare.py"), str(table), str(work / "ml_assets.yaml"),
                      *extra],
                     env=base_env(GX_ANALYTICS_ENABLED="False"), cwd=work, log_dir=log_dir,
                     name=name)
    _check(m, f"bare script ({name})")
    result = _json_line(m.stdout, "BARE_RESULT")
    return {**_figures(m), "phases": result["phases"], "metrics": result["metrics"],
            "imported_dagster": result["imported_dagster"],
            "imported_mlflow": result["imported_mlflow"]}


def case_bare(table: Path, work: Path) -> dict:
    """(a) the bare script, in a fresh process."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "ml_assets.yaml").write_text(PIPELINE_YAML)
    return _run_bare(table, work, work / "logs", "bare")


def case_bare_mlflow(table: Path, work: Path) -> dict:
    """(a+) the bare script, then plots and MLflow tracking and registration, in a fresh
    process, against an MLflow sqlite store created beforehand as (b) and (c) have theirs."""
    home = prepare_home(work, None)
    uri = f"sqlite:///{home.ml_home / 'mlflow.db'}"
    return _run_bare(table, work, home.logs, "bare_mlflow", "--mlflow", uri)


def case_cli(table: Path, work: Path) -> tuple[dict, Home]:
    """(b) `ml-assets run` with the table in the landing folder."""
    home = prepare_home(work, table)
    m = run_measured([str(BIN / "ml-assets"), "run"], env=home.env, cwd=home.work,
                     log_dir=home.logs, name="cli_run")
    _check(m, "ml-assets run")
    if "=> registered" not in m.stdout:
        raise CaseFailed(f"ml-assets run did not register a model:\n{m.stdout[-2000:]}")
    return {**_figures(m), "home_init_seconds": home.init_seconds,
            **_run_breakdown(home, m), "output": m.stdout.strip().splitlines()}, home


def case_noop(home: Home, repeats: int) -> dict:
    """A second `ml-assets run` in a home where everything has run: nothing new."""
    runs = []
    for i in range(repeats):
        m = run_measured([str(BIN / "ml-assets"), "run"], env=home.env, cwd=home.work,
                         log_dir=home.logs, name=f"noop_{i}")
        _check(m, "no-op ml-assets run")
        if "nothing new" not in m.stdout:
            raise CaseFailed(f"expected 'nothing new', got:\n{m.stdout}")
        runs.append(_figures(m))
    best = min(runs, key=lambda r: r["wall"])
    return {**best, "walls": [r["wall"] for r in runs]}


MATERIALIZE = ["asset", "materialize", "-m", "ml_assets.definitions", "--select", "*"]

# (d): the same launched run with Dagster's multiprocess executor at its best for this graph:
# forkserver, with the libraries the steps import already loaded in the fork server.
MULTIPROCESS_CONFIG = {"execution": {"config": {"multiprocess": {"start_method": {"forkserver": {
    "preload_modules": ["dagster", "ml_assets.definitions", "pandas", "pyarrow.parquet",
                        "sklearn.ensemble", "great_expectations", "mlflow", "skops.io",
                        "matplotlib.figure"]}}}}}}


def case_launched(table: Path, work: Path, run_config: dict | None = None) -> dict:
    """(c) `dagster asset materialize` of the whole graph for one registered data version.

    The version is registered and its dynamic partition added first, by a separate untimed
    process, as new_data_sensor would; only the run is timed. The command loads the code
    location from its module in a fresh process and executes the run with the code
    location's default executor, recording into DAGSTER_HOME's instance: what the run worker
    that the daemon's run launcher starts for a sensor or UI run does, minus the queue.
    """
    home = prepare_home(work, table)
    keys = home.helper("register")["keys"]
    if len(keys) != 1:
        raise CaseFailed(f"expected one new data version, got {keys}")
    extra = ["--config-json", json.dumps(run_config)] if run_config else []
    m = run_measured([str(BIN / "dagster"), *MATERIALIZE, "--partition", keys[0], *extra],
                     env=home.env, cwd=home.work, log_dir=home.logs, name="materialize")
    _check(m, "dagster asset materialize")
    breakdown = _run_breakdown(home, m)
    if breakdown.get("run_status") != "SUCCESS":
        raise CaseFailed(f"the run did not succeed: {breakdown}")
    return {**_figures(m), "home_init_seconds": home.init_seconds, "partition": keys[0],
            **breakdown}


# --------------------------------------------------------------------------- imports, sensor

IMPORT_SNIPPET = (
    "import time, warnings; warnings.filterwarnings('ignore'); t = time.perf_counter(); "
    "import {module}; print('IMPORT_SECONDS', time.perf_counter() - t)"
)


def case_imports(work: Path, repeats: int) -> dict:
    """`import dagster` vs `import ml_assets.definitions`, each in fresh processes, best of N."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "ml_assets.yaml").write_text(PIPELINE_YAML)
    env = base_env(ML_ASSETS_HOME=str(work / ".ml_assets"), DAGSTER_HOME=str(work / ".dh"))
    out: dict[str, dict] = {}
    for module in ("dagster", "ml_assets.definitions"):
        imports, walls = [], []
        for i in range(repeats):
            m = run_measured([PYTHON, "-c", IMPORT_SNIPPET.format(module=module)], env=env,
                             cwd=work, log_dir=work / "logs", name=f"import_{module}_{i}")
            _check(m, f"import {module}")
            imports.append(float(m.stdout.split("IMPORT_SECONDS")[1].split()[0]))
            walls.append(m.wall)
        out[module] = {"import": round(min(imports), 3), "process_wall": round(min(walls), 3),
                       "imports": [round(x, 3) for x in imports]}
    out["difference"] = round(out["ml_assets.definitions"]["import"] - out["dagster"]["import"], 3)
    out["heaviest_beyond_dagster"] = _importtime_top(work, env)
    return out


def _importtime_tree(stderr: str) -> dict[str, tuple[int, int, str | None]]:
    """name -> (self us, cumulative us, parent) from `python -X importtime` output."""
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)", line)
        if match:
            rows.append((int(match.group(1)), int(match.group(2)),
                         (len(match.group(3)) - 1) // 2, match.group(4)))
    tree: dict[str, tuple[int, int, str | None]] = {}
    last_at_depth: dict[int, str] = {}
    for self_us, cum_us, depth, name in reversed(rows):  # children print before parents
        tree[name] = (self_us, cum_us, last_at_depth.get(depth - 1))
        last_at_depth[depth] = name
    return tree


def _importtime_top(work: Path, env: dict, top: int = 8) -> list[dict]:
    """What `import ml_assets.definitions` imports beyond `import dagster`: the third-party
    modules that ml_assets imports directly (cumulative), and ml_assets' own modules (self)."""
    def tree(module: str) -> dict:
        m = run_measured([PYTHON, "-X", "importtime", "-c", f"import {module}"], env=env,
                         cwd=work, log_dir=work / "logs", name=f"importtime_{module}")
        return _importtime_tree(m.stderr)

    base, ours = tree("dagster"), tree("ml_assets.definitions")
    found = []
    own = 0
    for name, (self_us, cum_us, parent) in ours.items():
        if name in base:
            continue
        if name.split(".")[0] == "ml_assets":
            own += self_us
        elif parent and parent.split(".")[0] == "ml_assets":
            found.append({"module": name, "imported_by": parent, "seconds": round(cum_us / 1e6, 3)})
    found.sort(key=lambda r: -r["seconds"])
    return [*found[:top], {"module": "ml_assets.* (own code, self time)", "imported_by": "",
                           "seconds": round(own / 1e6, 3)}]


def case_sensor(work: Path, files: int, ticks: int) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "ml_assets.yaml").write_text(PIPELINE_YAML)
    m = run_measured([PYTHON, str(HERE / "sensor_tick.py"), str(work), str(files), str(ticks)],
                     env=base_env(), cwd=work, log_dir=work / "logs", name="sensor")
    _check(m, "sensor tick benchmark")
    return _json_line(m.stdout, "SENSOR_RESULT")


def median_of(results: list[dict]) -> dict:
    """The repetition with the median wall time (its own figures, not mixed), with all walls."""
    ordered = sorted(results, key=lambda r: r["wall"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(results) > 1:
        chosen["walls"] = [r["wall"] for r in results]
        chosen["cpus"] = [r["cpu"] for r in results]
    return chosen

