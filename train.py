#!/usr/bin/env python3
"""Train a calibrated ensemble (log-mel CNNs, optionally heads on the pretrained musicnn taggers)
into its run folder (runs/<date>-<time>/, beside its checkpoints); --out weights ships it as run.sh's.

    python train.py --metadata fma_metadata/ --audio fma_medium/            # FMA, official split
    python train.py --labels train_labels.csv --audio fma_medium/           # crowdAI labels
    python train.py --labels my_labels.csv                                  # your own path,genre CSV
    python train.py ... --backbone musicnn                                  # + heads on pretrained musicnn
    torchrun --nproc_per_node 8 train.py ...                                # data-parallel on 8 GPUs
    python train.py ... --shard 3/8                                         # only cache shard 3 of 8

Reads as the pipeline it runs: labelled tracks -> feature cache (decode + log-mel once, resumable)
-> N members trained on random crops (resumable per epoch) -> each member and their average
evaluated on validation -> ONE temperature fitted on the averaged validation log-probabilities
-> test-split report -> ensemble written atomically (manifest last).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

from model.cli import ArgumentParser, die, non_negative_int, positive_int, shard_arg
from model.stopping import OutOfSpace, catch_sigterm, how_stopped

PROG = "train.py"
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data (FMA metadata + audio, or a labels file)")
    data.add_argument(
        "--metadata", help="unzipped fma_metadata/ folder (tracks.csv): official artist-filtered split"
    )
    data.add_argument("--audio", help="unzipped fma_medium/ folder (000/000002.mp3 layout)")
    data.add_argument(
        "--labels", help="crowdAI train_labels.csv (track_id,genre; needs --audio) or a path,genre CSV"
    )
    data.add_argument(
        "--subset",
        default="medium",
        choices=["small", "medium", "large", "full"],  # model.fma.SUBSETS (not imported here: see main)
        help="FMA subset (default medium; full: the large set's tracks at full length, 3 windows each cached)",
    )
    out = parser.add_argument_group("outputs")
    out.add_argument(
        "--out",
        default=None,
        help="ensemble folder to write (default: the run folder; --out weights replaces the model "
        "run.sh ships, and says what it replaces)",
    )
    out.add_argument("--cache", default=str(HERE / "cache"), help="feature cache root (default cache/)")
    out.add_argument(
        "--run-dir",
        default=None,
        help="per-epoch checkpoints (default: a new runs/<date>-<time>/ for each run)",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --run-dir (default: the newest run in runs/)",
    )
    model = parser.add_argument_group("model and training")
    model.add_argument(
        "--members", type=non_negative_int, default=3, help="CNN members trained from scratch (default 3)"
    )
    model.add_argument(
        "--epochs",
        type=positive_int,
        default=40,
        help="maximum epochs per member (default 40). An epoch is one pass over the training clips "
        "or --min-epoch-steps optimizer steps, whichever is more; warm-up (1 epoch), patience "
        "and the cosine schedule count those epochs, so they mean the same on 100 clips as on 25,000",
    )
    model.add_argument(
        "--min-epoch-steps",
        type=positive_int,
        default=32,
        help="optimizer steps an epoch has at least (default 32)",
    )
    model.add_argument("--batch-size", type=positive_int, default=64, help="crops per step (default 64)")
    model.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default 2e-3)")
    model.add_argument(
        "--patience",
        type=positive_int,
        default=6,
        help="epochs without a better validation log loss before stopping (default 6); validation scores "
        "the bias-corrected output predict.py writes, after batch-norm statistics are "
        "recomputed on clean training crops",
    )
    model.add_argument(
        "--architecture",
        default="short_chunk_resnet",
        help="network(s) of the --members, cycled over them like --chunk-seconds (default "
        f"short_chunk_resnet); registered in model/networks/: {', '.join(from_scratch_architectures())}",
    )
    model.add_argument(
        "--hparams",
        default=None,
        metavar="JSON",
        help="hyper-parameters over each architecture's registered defaults, e.g. '{\"dropout\": 0.2}'",
    )
    model.add_argument(
        "--channels",
        default=None,
        help="shorthand for --hparams '{\"channels\": [...]}': widths, one block each (e.g. 32,64,128,256)",
    )
    model.add_argument(
        "--chunk-seconds", default="3,2,4", help="crop lengths, cycled over members (default 3,2,4)"
    )
    model.add_argument(
        "--balance", default="sqrt", choices=["sqrt", "none"], help="class-balanced sampling (default sqrt)"
    )
    model.add_argument("--n-mels", type=positive_int, default=128, help="CNN mel bands (default 128)")
    model.add_argument("--hop-length", type=positive_int, default=256, help="CNN hop at 16 kHz (default 256)")
    model.add_argument("--seed", type=non_negative_int, default=0, help="member i uses seed + i (default 0)")
    model.add_argument(
        "--max-tracks",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on N tracks of the training split, drawn per genre in proportion (validation and "
        "test unchanged): a quick check of a change",
    )
    transfer = parser.add_argument_group(
        "transfer learning (pretrained musicnn taggers, see model/musicnn.py)"
    )
    transfer.add_argument(
        "--backbone",
        default="none",
        choices=["none", "musicnn"],
        help="also train genre heads on the pretrained taggers' embedding (default none)",
    )
    transfer.add_argument("--backbone-members", type=positive_int, default=2, help="such members (default 2)")
    transfer.add_argument(
        "--fine-tune", action="store_true", help="train the taggers too (10x lower learning rate)"
    )
    transfer.add_argument(
        "--backbone-lr", type=float, default=1e-3, help="peak learning rate of the heads (default 1e-3)"
    )
    transfer.add_argument(
        "--backbone-weights",
        default=str(HERE / "weights" / "musicnn" / "musicnn_pair.pt"),
        help="converted taggers (default weights/musicnn/musicnn_pair.pt)",
    )
    transfer.add_argument(
        "--max-chunks",
        type=positive_int,
        default=4,
        help="3-s chunks a musicnn member scores per clip, spread over it (default 4)",
    )
    run = parser.add_argument_group("machine")
    run.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto: CUDA if a kernel really runs there, else CPU (default auto)",
    )
    run.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help="cache-building processes (default: usable cores, shared by the ranks of a node)",
    )
    run.add_argument(
        "--shard",
        type=shard_arg,
        default=None,
        metavar="I/N",
        help="only decode shard I of N of the tracks into the feature cache, then stop: N machines "
        "share the decoding; a run without --shard then joins the parts and trains",
    )
    args = parser.parse_args(argv)
    if args.shard is not None and args.resume:
        parser.error("--shard only builds a part of the feature cache: it has nothing to --resume")
    if args.members == 0 and args.backbone == "none":
        parser.error("--members 0 leaves nothing to train: add --backbone musicnn, or train at least one CNN")
    if args.backbone == "musicnn" and not Path(args.backbone_weights).is_file():
        parser.error(
            f"--backbone-weights {args.backbone_weights} does not exist (tools/convert_musicnn.py writes it)"
        )
    if not args.labels and not (args.metadata and args.audio):
        parser.error(
            "give --metadata and --audio (FMA), or --labels (with --audio for crowdAI's track_id,genre)"
        )
    try:
        args.chunk_seconds = [float(c) for c in args.chunk_seconds.split(",")]
        channels = args.channels and [int(c) for c in args.channels.split(",")]
    except ValueError:
        parser.error("--channels and --chunk-seconds take comma-separated numbers, e.g. 32,64,128 and 3,2,4")
    args.architecture = [a.strip() for a in args.architecture.split(",")]
    try:
        args.hparams = member_hparams(args.architecture, args.hparams, channels)
    except ValueError as error:
        parser.error(str(error))
    return args


def from_scratch_architectures() -> list[str]:
    """The registered networks --architecture takes (trained from scratch on log-mels)."""
    from model.networks import get_architecture, list_architectures

    return [name for name in list_architectures() if get_architecture(name).kind == "cnn"]


def member_hparams(architectures: list[str], text: str | None, channels: list[int] | None) -> dict:
    """--hparams (a JSON object) with --channels folded in, checked against every architecture."""
    from model.networks import get_architecture, resolve_hparams

    try:
        hparams = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"--hparams is not JSON ({error.msg} at character {error.pos}): {text}") from None
    if not isinstance(hparams, dict):
        raise ValueError(f"--hparams must be a JSON object like '{{\"dropout\": 0.2}}', got {text}")
    if channels:
        if "channels" in hparams:
            raise ValueError("--channels and --hparams both set channels: give one")
        hparams["channels"] = channels
    for name in architectures:
        if get_architecture(name).kind != "cnn":  # ValueError naming the registered ones if unknown
            raise ValueError(
                f"--architecture {name} is not trained from scratch here (kind {get_architecture(name).kind}); "
                f"from-scratch architectures: {', '.join(from_scratch_architectures())}"
                + ("; heads on the musicnn taggers come with --backbone musicnn" if "musicnn" in name else "")
            )
        resolve_hparams(name, hparams)
    return hparams


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    catch_sigterm()  # docker stop, Kubernetes, Slurm: stop as on ^C, keeping the last checkpoint
    # Heavy imports here: cache workers re-import this script when they start.
    from model import distributed
    from model.device import usable_cores
    from model.runs import RunLog, write_config

    started = time.perf_counter()
    warnings.simplefilter("always")
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
    # 1. Labelled audio, this process's rank (under torchrun), where the checkpoints go, the
    #    device; the members to train.
    tracks, ranks, run_dir, device = open_run(args)
    plans = member_plans(args)

    # 2. Features: every track decoded and turned into log-mels once per spectrogram config
    #    (each rank of a node decoding its shard with its share of the cores).
    workers = args.workers if args.workers is not None else usable_cores()
    workers = workers and max(1, workers // ranks.local_world)
    if args.shard is not None:
        return build_cache_shard(args, plans, tracks, workers, started)
    data = load_features(args, plans, tracks, workers, device, ranks)

    # 3. Train each member (resumable per epoch), keep its validation and test log-probabilities;
    #    the run's record (config.json, TensorBoard events: model/runs.py) beside its checkpoints.
    if ranks.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, vars(args), tracks, plans)
    log = RunLog(run_dir, enabled=ranks.main)
    out = Path(args.out) if args.out else run_dir
    trained = train_members(plans, data, run_dir, out, ranks, log)
    if not ranks.main:  # rank 0 fits the temperature, reports and writes
        log.close()
        distributed.finish(ranks)
        return 0

    # 4. Ensemble: one temperature fitted on validation, through the rule prediction applies;
    # 5. the report on the test split (validation without one); the ensemble, the report and
    #    each member's predictions written.
    manifest, report = fit_ensemble(args, trained, data.splits[plans[0][1]])
    write_ensemble(out, manifest, trained["states"], report)
    save_member_predictions(run_dir, trained, data.splits[plans[0][1]])
    log.ensemble(
        {
            "valid_log_loss": report["validation_log_loss"],
            f"{report['split']}_log_loss": report["ensemble"]["log_loss"],
        }
    )
    log.close()
    ship = (
        ""
        if out.resolve() == (HERE / "weights").resolve()
        else f"; ship it: python tools/promote_run.py {out}"
    )
    print(
        f"\nwrote {out}/manifest.json (+{len(trained['states'])} state dicts), report.json, confusion.png in "
        f"{(time.perf_counter() - started) / 60:.1f} min. Predict with it: "
        f"python predict.py --weights {out} --payload DIR{ship}",
        file=sys.stderr,
    )
    distributed.finish(ranks)
    return 0


def load_features(args, plans: list, tracks, workers: int, device, ranks):
    """The feature caches (built where missing) and the splits over them; one line on what
    training runs on, or on an empty split."""
    from model import distributed, fma
    from model.features import TrainingData

    data = TrainingData.build(args.cache, [s for _, s in plans], tracks, workers, device, ranks)
    train, valid, test = (data.splits[plans[0][1]][s] for s in fma.SPLITS)
    if len(train.labels) == 0 or len(valid.labels) == 0:
        die(PROG, "need usable tracks in both the training and the validation split")
    distributed.check_same([len(c.labels) for c in (train, valid, test)], "the clips of each split", ranks)
    placement = "on the GPU" if all(s.on_device for s in data.stores.values()) else "memory-mapped"
    processes = f"{ranks.world} ranks, " if ranks.active else ""
    if ranks.main:  # rank 0 speaks for all
        print(
            f"training on {processes}{device} (features {placement}): {len(train.labels)} train / "
            f"{len(valid.labels)} validation / {len(test.labels)} test clips",
            file=sys.stderr,
        )
    return data


def train_members(plans: list, data, run_dir: Path, out: Path, ranks, log) -> dict:
    """Every member trained (or resumed), with its manifest entry and state dict (rank 0), its
    history, and its validation and test log-probabilities, by member name."""
    from model.members import manifest_entry
    from model.training import predict_clips, train_member

    trained = {"members": [], "states": {}, "histories": {}, "validation": [], "test": []}
    for config, spectrogram in plans:
        store, clips = data.stores[spectrogram], data.splits[spectrogram]
        chunk_frames = spectrogram.seconds_to_frames(config.chunk_seconds)
        checkpoint = run_dir / f"{config.name}.ckpt"
        try:
            network, trained["histories"][config.name] = train_member(
                config,
                store,
                clips["training"],
                clips["validation"],
                chunk_frames,
                checkpoint,
                ranks,
                log.epoch,
            )
            if ranks.main:
                spec, trained["states"][config.name] = manifest_entry(config, spectrogram, network, out)
                trained["members"].append(spec)
        except ValueError as error:
            die(PROG, str(error))
        for split in ("validation", "test"):
            if len(clips[split].labels):
                log_probs = predict_clips(
                    network,
                    store,
                    clips[split],
                    chunk_frames,
                    None,
                    max_chunks=config.max_chunks,
                    ranks=ranks,
                )
                trained[split].append(log_probs.cpu())
    return trained


def fit_ensemble(args, trained: dict, splits: dict):
    """(the manifest, train.py's report): one temperature fitted on the members' validation
    log-probabilities, scored on the test split (validation when there is none)."""
    import torch

    from model.calibration import fit_temperature, output_log_loss
    from model.genres import GENRES
    from model.manifest import Manifest
    from model.metrics import training_report
    from model.training import class_prior

    train, valid, test = splits["training"], splits["validation"], splits["test"]
    members, valid_log_probs = trained["members"], torch.stack(trained["validation"])
    temperature = fit_temperature(valid_log_probs, valid.labels)
    valid_loss = output_log_loss(valid_log_probs, valid.labels, temperature).item()
    print(
        f"ensemble: temperature {temperature:.3f}, validation log loss {valid_loss:.4f} (what predict.py's "
        f"output scores on the {len(valid.labels)} validation clips)",
        file=sys.stderr,
    )
    prior = class_prior(train.labels)
    source = "FMA " + args.subset if args.metadata else args.labels
    description = (
        f"{', '.join(m.name for m in members)} trained by train.py on {len(train.labels)} clips ({source})"
    )
    rate, prior_tuple = members[0].spectrogram.sample_rate, tuple(float(p) for p in prior)
    manifest = Manifest(GENRES, rate, temperature, prior_tuple, tuple(members), description)
    split, scored, log_probs = (
        ("test", test, torch.stack(trained["test"]))
        if len(test.labels)
        else ("validation", valid, valid_log_probs)
    )
    report = training_report(
        split, scored.labels.numpy(), log_probs, members, trained["histories"], temperature, valid_loss, prior
    )
    return manifest, report


def save_member_predictions(run_dir: Path, trained: dict, splits: dict) -> None:
    """Each member's validation and test log-probabilities, for tools/runs.py build."""
    from model.runs import save_predictions

    names = [m.name for m in trained["members"]]
    scored = {s: splits[s] for s in ("validation", "test") if len(splits[s].labels)}
    save_predictions(
        run_dir,
        {split: (clips.keys, clips.labels.numpy()) for split, clips in scored.items()},
        {split: list(zip(names, trained[split])) for split in scored},
    )


def open_run(args):
    """The labelled tracks, this process's rank, this run's checkpoint folder and the device;
    one line on failure. Under torchrun, rank 0 picks the run folder for all."""
    from model import distributed, fma
    from model.device import DeviceError, choose_device

    try:
        tracks = fma.load_labelled_audio(args.metadata, args.audio, args.labels, args.subset, args.seed)
        if args.max_tracks is not None:
            tracks = fma.slice_training(tracks, args.max_tracks, args.seed)
        distributed.claim_local_gpu()
        device, warning = choose_device(args.device)
    except (fma.DataError, DeviceError) as error:
        die(PROG, str(error))
    if args.shard is not None and distributed.launched_by_torchrun():
        die(PROG, "--shard is for separate machines; under torchrun every rank builds its shard itself", 2)
    if warning and distributed.launched_by_torchrun():  # a rank on the CPU among GPU ranks would hang
        die(PROG, f"under torchrun every rank must use the same device ({warning}); pass --device cpu")
    ranks, device = distributed.start(device) if args.shard is None else (distributed.SINGLE, device)
    chosen: tuple = (None, None)
    if ranks.main and args.shard is None:
        try:
            chosen = (choose_run_dir(args.run_dir, args.resume, HERE / "runs"), None)
        except ValueError as error:
            chosen = (None, str(error))
    run_dir, problem = distributed.broadcast(chosen, ranks)
    if problem:
        die(PROG, problem, 2)
    if ranks.main:
        counts = tracks["split"].value_counts()
        print(
            f"{len(tracks)} labelled tracks with audio: "
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in fma.SPLITS),
            file=sys.stderr,
        )
        if run_dir is not None:
            print(f"checkpoints: {run_dir}" + (" (resuming)" if args.resume else ""), file=sys.stderr)
        if warning:
            print(warning, file=sys.stderr)
    return tracks, ranks, run_dir, device


def build_cache_shard(args, plans: list, tracks, workers: int, started: float) -> int:
    """--shard I/N: this shard's part of every feature cache the run needs, then a summary."""
    from model.feature_cache import build_caches

    configs = list(dict.fromkeys(s for _, s in plans))
    parts = build_caches(args.cache, configs, tracks[["key", "path"]], workers, args.shard)
    if not parts:
        return 0
    rows = max(len(part.index) for part in parts.values())
    print(
        f"cache shard {args.shard}: {rows} tracks in {', '.join(str(p.folder) for p in parts.values())} "
        f"({(time.perf_counter() - started) / 60:.1f} min). Once every shard is done, train.py "
        "without --shard joins the parts and trains",
        file=sys.stderr,
    )
    return 0


def member_plans(args) -> list:
    """CNNs diverse by seed and crop length; heads on the pretrained taggers if asked."""
    from model.members import plan_members
    from model.spectrogram import SpectrogramConfig

    return plan_members(
        args.members,
        args.backbone_members if args.backbone == "musicnn" else 0,
        architectures=args.architecture,
        hparams=args.hparams,
        spectrogram=SpectrogramConfig(n_mels=args.n_mels, hop_length=args.hop_length),
        chunk_seconds=args.chunk_seconds,
        seed=args.seed,
        lr=args.lr,
        head_lr=args.backbone_lr,
        fine_tune=args.fine_tune,
        max_chunks=args.max_chunks,
        backbone_weights=args.backbone_weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        balance=args.balance,
        min_epoch_steps=args.min_epoch_steps,
    )


def write_ensemble(out: Path, manifest, states: dict, report: dict) -> None:
    """The ensemble (manifest last, atomically), report.json and confusion.png; the report's table."""
    from model.atomic import write_atomic
    from model.metrics import confusion_png, report_table
    from model.saving import describe_ensemble, save_ensemble

    replaced = describe_ensemble(out)  # only a deliberate --out holds one
    if replaced:
        print(f"replacing the ensemble in {out}: {replaced}", file=sys.stderr)
    ensemble, split = report["ensemble"], report["split"]
    write_atomic(out / "report.json", (json.dumps(report, indent=1) + "\n").encode())
    title = f"ensemble on the {split} split: log loss {ensemble['log_loss']:.3f}, macro F1 {ensemble['macro_f1']:.3f}"
    confusion_png(ensemble["confusion"], out / "confusion.png", title)
    save_ensemble(out, manifest, states)  # last: its manifest is the commit point
    clips = sum(sum(row) for row in ensemble["confusion"])
    print(f"\n{split} split ({clips} clips); class-prior log loss {report['prior_log_loss']:.3f}")
    print(report_table(report))


def choose_run_dir(run_dir: str | None, resume: bool, root: Path) -> Path:
    """Where this run's checkpoints go. Given: that folder, refused if it holds another run's
    checkpoints and this is no --resume. Not given: a fresh root/<date>-<time>/, or with --resume
    the newest folder in root that holds checkpoints. Raises ValueError with the message."""
    if run_dir is not None:
        path = Path(run_dir)
        if path.exists() and any(path.glob("*.ckpt")) and not resume:
            raise ValueError(
                f"{path} holds checkpoints of an earlier run: pass --resume to continue it, "
                "or choose another --run-dir"
            )
        return path
    if resume:
        runs = sorted(
            (d for d in root.glob("*") if d.is_dir() and any(d.glob("*.ckpt"))), key=lambda d: d.name
        )
        if not runs:
            raise ValueError(f"--resume: no run with checkpoints in {root}; name it with --run-dir")
        return runs[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path


KEPT = "Finished epochs are checkpointed in --run-dir and decoded tracks cached in --cache"

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:  # ^C or SIGTERM
        word, code = how_stopped(stop)
        if os.environ.get("RANK", "0") != "0":  # under torchrun every rank stops alike: rank 0 says so
            raise SystemExit(code) from None
        die(PROG, f"{word}. {KEPT}: the same command with --resume goes on from there", code)
    except OutOfSpace as error:
        die(PROG, f"{error}. {KEPT}: free some space and rerun the same command with --resume")
