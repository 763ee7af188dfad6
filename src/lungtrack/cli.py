"""The ``lungtrack`` command: thin, each subcommand calls one library function.

``main(argv)`` returns an exit code, so tests call it in-process.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("lungtrack")


def sample_data_path() -> Path:
    """The shipped sample experiment (``sample_data/experiment`` in the source tree).

    When lungtrack is installed without its source tree, the same experiment is
    regenerated (deterministically, seed 0) into ``~/.cache/lungtrack/sample_data``.
    """
    here = Path(__file__).resolve().parents[2] / "sample_data" / "experiment"
    if (here / "manifest.csv").exists():
        return here
    cache = Path.home() / ".cache" / "lungtrack" / "sample_data" / "experiment"
    if not (cache / "manifest.csv").exists():
        from .synthetic import simulate_experiment

        log.info("sample data not found beside the package; simulating it into %s", cache)
        simulate_experiment(cache, seed=0)
    return cache


def _client(args):
    if getattr(args, "scheduler", None):
        from distributed import Client

        return Client(args.scheduler)
    if getattr(args, "workers", None):
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None)
        return Client(cluster)
    return None


def _run_analysis(experiment, out, config, args, *, overwrite):
    from .pipeline import analyze

    client = _client(args)
    try:
        if client is not None:
            print(f"Dask cluster: {client.scheduler.address} ({len(client.scheduler_info()['workers'])} workers)")
        return analyze(experiment, config=config, out=out, client=client, overwrite=overwrite, progress=True,
                       use_dask=not getattr(args, "no_dask", False))
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()


def _summary(res) -> str:
    s = res.samples
    lines = [
        f"Analysed {len(s)} images: {int(s['n_msc'].sum())} MSCs, {int(s['n_macrophage'].sum())} macrophages.",
        "MSC persistence (one-phase exponential decay, 95% CI by bootstrapping animals):",
        res.headline(),
        f"Results: {res.out}",
        f"  report:  {res.out / 'report.html'}",
        f"  figure:  {res.out / 'figures' / 'persistence.png'}",
        "  tables:  samples.csv, objects.parquet, interactions.csv, coloc.csv, persistence.csv, persistence_fit.csv",
    ]
    return "\n".join(lines)


def cmd_demo(args) -> int:
    exp = sample_data_path()
    print(f"lungtrack demo: analysing the sample experiment in {exp}")
    res = _run_analysis(exp, args.out, exp / "config.yaml", args, overwrite=True)
    print(_summary(res))
    truth = exp / "truth" / "groups.csv"
    if truth.exists():
        import pandas as pd

        t = pd.read_csv(truth)
        print("Simulated (true) half-lives: " + ", ".join(f"{g} {h:g} h" for g, h in zip(t.group, t.half_life_h)))
    return 0


def cmd_analyze(args) -> int:
    res = _run_analysis(args.experiment, args.out, args.config, args, overwrite=args.overwrite)
    print(_summary(res))
    return 0


def cmd_simulate(args) -> int:
    from .synthetic import simulate_experiment

    groups = {}
    for item in args.groups.split(","):
        name, _, hl = item.partition("=")
        groups[name.strip()] = float(hl)
    times = tuple(float(t) for t in args.times.split(","))
    shape = (args.z, args.size, args.size) if args.z > 1 else (args.size, args.size)
    man = simulate_experiment(args.out, groups=groups, time_h=times, n_animals=args.animals,
                              n_sections=args.sections, shape=shape, pixel_size_um=args.pixel_size,
                              seed=args.seed, progress=True)
    print(f"Simulated {len(man)} images in {args.out} (manifest.csv, config.yaml, images/, truth/)")
    return 0


def cmd_config(args) -> int:
    from .config import Config

    if args.check:
        Config.from_yaml(args.check)
        print(f"{args.check}: valid")
        return 0
    sys.stdout.write(Config().to_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lungtrack", description="Measure the fate of infused MSCs in lung tissue.")
    p.add_argument("-v", "--verbose", action="store_true", help="more log messages")
    sub = p.add_subparsers(dest="command", required=True)

    def cluster_opts(sp):
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--workers", type=int, help="start a local dask.distributed cluster with N worker processes")
        g.add_argument("--scheduler", help="address of an existing Dask scheduler (e.g. tcp://host:8786)")
        g.add_argument("--no-dask", action="store_true", help="plain loop, no Dask (debugging)")

    d = sub.add_parser("demo", help="analyse the shipped sample experiment and print the half-lives")
    d.add_argument("--out", default="lungtrack-demo", help="results folder (default: ./lungtrack-demo)")
    cluster_opts(d)
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("analyze", help="analyse an experiment (manifest CSV or folder) into a results folder")
    a.add_argument("experiment", help="manifest.csv, or a folder with manifest.csv or pattern-named images")
    a.add_argument("--out", required=True, help="results folder to create")
    a.add_argument("--config", help="YAML config (see `lungtrack config --default`)")
    a.add_argument("--overwrite", action="store_true", help="replace an existing results folder")
    cluster_opts(a)
    a.set_defaults(func=cmd_analyze)

    s = sub.add_parser("simulate", help="write a simulated experiment with exact ground truth")
    s.add_argument("out", help="folder to create")
    s.add_argument("--groups", default="BM=8,UC=16", help="group=half-life-in-hours pairs (default BM=8,UC=16)")
    s.add_argument("--times", default="2,8,24,48", help="time points in hours")
    s.add_argument("--animals", type=int, default=3)
    s.add_argument("--sections", type=int, default=1)
    s.add_argument("--size", type=int, default=384, help="image width and height in pixels")
    s.add_argument("--z", type=int, default=1, help="z slices (>1 makes z-stacks)")
    s.add_argument("--pixel-size", type=float, default=1.0, help="um per pixel")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_simulate)

    c = sub.add_parser("config", help="print the default config as YAML, or check a config file")
    c.add_argument("--default", action="store_true", help="print the default config (the default action)")
    c.add_argument("--check", metavar="FILE", help="validate a YAML config file")
    c.set_defaults(func=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    from .io import LungtrackInputError

    import signal

    args = build_parser().parse_args(argv)
    # A batch system's SIGTERM (time limit) unwinds like Ctrl-C: no half-written results folder.
    try:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    except ValueError:  # not in the main thread (e.g. called from a test worker thread)
        pass
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (LungtrackInputError, FileExistsError, FileNotFoundError) as exc:
        print(f"lungtrack: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # pydantic validation of a config file
        if type(exc).__name__ == "ValidationError":
            print(f"lungtrack: error: invalid config: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
