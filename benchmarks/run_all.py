"""Run every ``benchmarks/bench_*.py`` and merge their results into ``benchmarks/results.json``.

Each benchmark runs as ``python benchmarks/bench_NAME.py --json TMP [extra arguments]`` in its own
process (its table goes to the terminal as it runs); its JSON becomes the entry ``NAME`` of the
results file, with ``machine`` (platform, CPU model, core count, load average), ``versions``
(Python, torch, numpy, chromtransfer, and TensorFlow/tf_keras from the benchmark environment when
present) and ``date`` (UTC, ISO 8601) added where the benchmark did not record them itself, plus
the command line and its wall time. Entries of benchmarks not run this time are kept from the
existing file; the file is replaced atomically. A benchmark that fails is reported and left out,
and the exit status is 1.

Usage::

    .venv/bin/python benchmarks/run_all.py [--only throughput ism] [--skip scale]
        [--results benchmarks/results.json] [--args throughput="--rounds 3"]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def discover() -> dict[str, Path]:
    """``NAME -> path`` for every ``bench_NAME.py`` beside this script, sorted by name."""
    return {p.stem[len("bench_"):]: p for p in sorted(HERE.glob("bench_*.py"))}


def machine_info() -> dict:
    """Platform, Python, CPU model and count, and the load average now (the machine is shared)."""
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("chromtransfer", "torch", "numpy", "scipy", "lightning"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    if BENCH_PYTHON.exists():
        probe = ("import importlib.metadata as m, json\n"
                 "out = {}\n"
                 "for d in ('tensorflow-cpu', 'tensorflow', 'tf_keras', 'tangermeme', 'memelite', 'pymemesuite'):\n"
                 "    try:\n        out[d] = m.version(d)\n    except m.PackageNotFoundError:\n        pass\n"
                 "print(json.dumps(out))")
        try:
            done = subprocess.run([str(BENCH_PYTHON), "-c", probe], capture_output=True, text=True,
                                  timeout=120, check=True)
            versions["bench_env"] = json.loads(done.stdout)
        except (subprocess.SubprocessError, json.JSONDecodeError, OSError):
            pass
    return versions


def run_one(name: str, script: Path, extra: list[str]) -> tuple[dict | None, float, list[str]]:
    """Run one benchmark with ``--json``; returns (its JSON or None on failure, seconds, command)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        out = Path(tmp) / f"{name}.json"
        command = [sys.executable, str(script), "--json", str(out), *extra]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
        print(f"\n=== {name}: {' '.join(shlex.quote(c) for c in command)}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not out.exists():
            print(f"=== {name} failed (exit status {done.returncode})", file=sys.stderr, flush=True)
            return None, seconds, command
        try:
            return json.loads(out.read_text()), seconds, command
        except json.JSONDecodeError as exc:
            print(f"=== {name} wrote unreadable JSON: {exc}", file=sys.stderr, flush=True)
            return None, seconds, command


def write_atomic(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def print_summary(document: dict, names: list[str]) -> None:
    """The top-level numbers of each benchmark run now (ratios, speed-ups, seconds)."""
    if not names:
        return
    print("\nsummary")
    for name in names:
        numbers = {k: v for k, v in document[name].items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and k not in ("wall_seconds", "seconds")}
        shown = ", ".join(f"{k} = {v:.3g}" for k, v in list(numbers.items())[:12])
        print(f"  {name:12s} {shown or '(see its table above)'}  [{document[name]['wall_seconds']} s]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names (e.g. throughput ism)")
    parser.add_argument("--skip", nargs="*", default=[], help="benchmark names to leave out")
    parser.add_argument("--results", default=str(HERE / "results.json"))
    parser.add_argument("--args", action="append", default=[], metavar='NAME="ARGS"',
                        help="extra arguments for one benchmark, e.g. throughput=\"--rounds 3\"")
    args = parser.parse_args(argv)

    found = discover()
    unknown = [n for n in (args.only or []) + args.skip if n not in found]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; found: {', '.join(found)}")
    extra: dict[str, list[str]] = {}
    for item in args.args:
        name, _, rest = item.partition("=")
        if name not in found:
            parser.error(f"--args names unknown benchmark {name!r}")
        extra[name] = shlex.split(rest)
    names = [n for n in found if (args.only is None or n in args.only) and n not in args.skip]

    results_path = Path(args.results)
    document: dict = {}
    if results_path.exists():
        try:
            document = json.loads(results_path.read_text())
        except json.JSONDecodeError:
            print(f"note: {results_path} is not valid JSON; starting a new one", file=sys.stderr)
    versions = library_versions()
    failed = []
    for name in names:
        date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        result, seconds, command = run_one(name, found[name], extra.get(name, []))
        if result is None:
            failed.append(name)
            continue
        if not isinstance(result, dict):
            result = {"result": result}
        result.setdefault("machine", machine_info())
        result.setdefault("versions", versions)
        result.setdefault("date", date)
        result["command"] = " ".join(shlex.quote(c) for c in command[1:])
        result["wall_seconds"] = round(seconds, 1)
        document[name] = result
        write_atomic(results_path, document)  # keep what is done if a later benchmark fails
    print_summary(document, [n for n in names if n not in failed])
    print(f"\nresults: {results_path} ({', '.join(n for n in names if n not in failed) or 'nothing new'})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
