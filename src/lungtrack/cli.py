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
                       use_dask=not getattr(args, "no_dask", False), resume=getattr(args, "resume", False),
                       strict=getattr(args, "strict", False),
                       allow_outside_paths=True if getattr(args, "allow_outside_paths", False) else None)
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
        "MSC persistence (one-phase exponential decay, 95% t-interval over animals):",
        res.headline(),
        f"Results: {res.out}",
        f"  report:  {res.out / 'report.html'}",
        f"  figure:  {res.out / 'figures' / 'persistence.png'}",
        "  tables:  samples.csv, objects.parquet, interactions.csv, coloc.csv, persistence.csv, persistence_fit.csv",
    ]
    n_reused = res.run.get("n_reused", 0)
    if n_reused:
        lines.insert(1, f"Resumed: {n_reused} images reused from the earlier run, "
                        f"{res.run.get('n_analysed', 0) - n_reused} analysed now.")
    if len(res.failures):
        lines.append(f"FAILED: {len(res.failures)} image(s) could not be analysed; they are listed with the "
                     f"reason and what to do in {res.out / 'failures.csv'}:")
        lines += [f"  {r.sample_id} ({r.stage}): {r.error}" for r in res.failures.head(10).itertuples()]
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


def _chunk_options(args):
    """The config, with --chunk-size / --memory-limit / --chunk-all (chunked segmentation) applied."""
    if args.chunk_size is None and args.memory_limit is None and not args.chunk_all:
        return args.config
    from .config import load_config

    cfg = load_config(args.config)
    if args.chunk_size is not None:
        cfg.run.chunk_size_px = args.chunk_size
    if args.memory_limit is not None:
        cfg.run.memory_limit_gb = args.memory_limit
    if args.chunk_all:
        cfg.run.chunked_min_voxels = 0
    return cfg


def cmd_analyze(args) -> int:
    from .batch import EXIT_FAILURES
    from .config import load_config

    cfg = _chunk_options(args)
    if load_config(cfg).run.memory_limit_gb is not None:
        from .segment.blockwise import use_one_malloc_arena

        use_one_malloc_arena()  # before dask's threads exist: the budget holds (see its docstring)
    res = _run_analysis(args.experiment, args.out, cfg, args, overwrite=args.overwrite)
    print(_summary(res))
    return EXIT_FAILURES if len(res.failures) else 0


def cmd_figures(args) -> int:
    from .report import figures_from_folder

    pngs = figures_from_folder(args.results)
    print(f"{len(pngs)} figures (PNG, SVG, PDF) in {Path(args.results) / 'figures'}:")
    for p in pngs:
        print(f"  {p.stem}")
    return 0


def cmd_report(args) -> int:
    from .report import report_from_folder

    print(f"Report: {report_from_folder(args.results)}")
    return 0


def cmd_verify(args) -> int:
    from .batch import verify

    checks = verify(args.results)
    bad = checks[~checks["ok"]]
    for kind in ("input", "output", "sample"):
        part = checks[checks["kind"] == kind]
        print(f"{kind}s: {int(part['ok'].sum())} of {len(part)} match")
    for r in bad.itertuples():
        print(f"  MISMATCH {r.kind} {r.name}: {r.detail}")
    print("verified: the results folder matches its inputs and config" if bad.empty
          else f"{len(bad)} mismatch(es): these numbers no longer follow from these inputs")
    return 0 if bad.empty else 1


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


def cmd_track(args) -> int:
    from .track import track_image

    res = track_image(args.image, args.out, args.config, frame_interval_min=args.frame_interval_min,
                      use_dask=not args.no_dask)
    s = res.summary
    n_msc = int((s.role == "msc").sum())
    print(f"Tracked {n_msc} MSCs and {int((s.role == 'macrophage').sum())} macrophages over {res.n_frames} frames "
          f"({res.frame_interval_min:g} min apart): {int((s.role == 'msc').sum() - s[s.role == 'msc'].right_censored.sum())} "
          f"MSCs lost, {len(res.contacts)} contacts, {int(res.contacts.engulfment.sum())} followed by engulfment.")
    print(f"Results: {args.out} (tracks.csv, track_summary.csv, contacts.csv, survival.csv, kaplan_meier.csv, "
          "cumulative_incidence.csv, track_edges.csv, figures/)")
    return 0


def cmd_survival(args) -> int:
    from .io import LungtrackInputError
    from .track import compare_survival

    pairs = []
    for item in args.folders:
        group, sep, folder = item.partition("=")
        if not sep or not group or not folder:
            raise LungtrackInputError(f"{item!r}: give GROUP=FOLDER (a folder written by `lungtrack track`)")
        pairs.append((group, folder))
    res = compare_survival(pairs, args.out)
    for r in res["by_group"].itertuples():
        print(f"{r.group}: {r.n_msc} MSCs, {r.n_lost} lost, median intact {r.median_min:g} min "
              f"(CI {r.ci_low_min:g}-{r.ci_high_min:g})")
    if res["logrank"] is not None:
        lr = res["logrank"]
        print(f"log-rank chi2 = {lr['statistic']:.3f}, df = {lr['df']}, p = {lr['p_value']:.3g}")
    print(f"Results: {args.out} (survival_by_group.csv, logrank.csv, cumulative_incidence.csv, figures/)")
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
    g = a.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace an existing lungtrack results folder")
    g.add_argument("--resume", action="store_true",
                   help="finish or update an existing run: reuse images already analysed with the same input "
                        "and config, analyse the rest, rebuild the tables")
    a.add_argument("--strict", action="store_true", help="stop at the first image that fails (default: record "
                   "it in failures.csv and go on; exit code 3)")
    a.add_argument("--allow-outside-paths", action="store_true",
                   help="accept manifest paths outside the experiment folder")
    a.add_argument("--chunk-size", type=int, metavar="PX",
                   help="chunk width/height for large images segmented chunk by chunk (run.chunk_size_px)")
    a.add_argument("--memory-limit", type=float, metavar="GB",
                   help="memory budget for large images: intermediates on disk, chunks sized to fit (run.memory_limit_gb)")
    a.add_argument("--chunk-all", action="store_true",
                   help="segment every image chunk by chunk, not only large ones (run.chunked_min_voxels = 0)")
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

    fg = sub.add_parser("figures", help="redraw every figure (PNG, SVG, PDF) of a results folder from its tables")
    fg.add_argument("results", help="results folder (with run.json)")
    fg.set_defaults(func=cmd_figures)

    r = sub.add_parser("report", help="rebuild report.html of a results folder from its files")
    r.add_argument("results", help="results folder (with run.json)")
    r.set_defaults(func=cmd_report)

    v = sub.add_parser("verify", help="re-check a results folder's input and output checksums")
    v.add_argument("results", help="results folder (with run.json)")
    v.set_defaults(func=cmd_verify)

    c = sub.add_parser("config", help="print the default config as YAML, or check a config file")
    c.add_argument("--default", action="store_true", help="print the default config (the default action)")
    c.add_argument("--check", metavar="FILE", help="validate a YAML config file")
    c.set_defaults(func=cmd_config)

    t = sub.add_parser("track", help="track MSCs and macrophages in a time-lapse; contacts and MSC survival")
    t.add_argument("image", help="time-lapse TIFF / OME-TIFF (T, C, [Z,] Y, X)")
    t.add_argument("--out", required=True, help="folder for tracks.csv, track_summary.csv, contacts.csv, survival.csv")
    t.add_argument("--config", help="YAML config (channels, segment, track sections)")
    t.add_argument("--frame-interval-min", type=float, help="minutes between frames (overrides the metadata)")
    t.add_argument("--no-dask", action="store_true", help="plain loop over frames, no Dask (debugging)")
    t.set_defaults(func=cmd_track)

    sv = sub.add_parser("survival", help="compare MSC survival between groups of tracked movies (log-rank)")
    sv.add_argument("folders", nargs="+", metavar="GROUP=FOLDER",
                    help="a group name and a folder written by `lungtrack track`; repeat a group to pool its movies")
    sv.add_argument("--out", required=True, help="folder for survival_by_group.csv, logrank.csv, figures/")
    sv.set_defaults(func=cmd_survival)
    return p


def main(argv: list[str] | None = None) -> int:
    import signal

    from .config import ConfigError
    from .io import LungtrackInputError

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
    except (LungtrackInputError, FileExistsError, FileNotFoundError, ConfigError) as exc:
        print(f"lungtrack: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # pydantic validation of a config file
        if type(exc).__name__ == "ValidationError":
            print(f"lungtrack: error: invalid config: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
