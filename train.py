#!/usr/bin/env python3
"""Train a calibrated ensemble (log-mel CNNs, optionally heads on the pretrained musicnn taggers)
and write it to weights/ for predict.py and run.sh.

    python train.py --metadata fma_metadata/ --audio fma_medium/            # FMA, official split
    python train.py --labels train_labels.csv --audio fma_medium/           # crowdAI labels
    python train.py --labels my_labels.csv                                  # your own path,genre CSV
    python train.py ... --backbone musicnn                                  # + heads on pretrained musicnn

Reads as the pipeline it runs: labelled tracks -> feature cache (decode + log-mel once, resumable)
-> N members trained on random crops (resumable per epoch) -> each member and their average
evaluated on validation -> ONE temperature fitted on the averaged validation log-probabilities
-> test-split report -> ensemble written atomically (manifest last).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

from model.cli import ArgumentParser, die, non_negative_int, positive_int

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data (FMA metadata + audio, or a labels file)")
    data.add_argument("--metadata", help="unzipped fma_metadata/ folder (tracks.csv): official artist-filtered split")
    data.add_argument("--audio", help="unzipped fma_medium/ folder (000/000002.mp3 layout)")
    data.add_argument("--labels", help="crowdAI train_labels.csv (track_id,genre; needs --audio) or a path,genre CSV")
    data.add_argument("--subset", default="medium", choices=["small", "medium", "large"], help="FMA subset (default medium)")
    out = parser.add_argument_group("outputs")
    out.add_argument("--out", default=str(HERE / "weights"), help="ensemble folder to write (default weights/)")
    out.add_argument("--cache", default=str(HERE / "cache"), help="feature cache root (default cache/)")
    out.add_argument("--run-dir", default=None,
                     help="per-epoch checkpoints (default: a new runs/<date>-<time>/ for each run)")
    out.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in --run-dir (default: the newest run in runs/)")
    model = parser.add_argument_group("model and training")
    model.add_argument("--members", type=non_negative_int, default=3, help="CNN members trained from scratch (default 3)")
    model.add_argument("--epochs", type=positive_int, default=40,
                       help="maximum epochs per member (default 40). An epoch is one pass over the training clips "
                            "or --min-epoch-steps optimizer steps, whichever is more; warm-up (1 epoch), patience "
                            "and the cosine schedule count those epochs, so they mean the same on 100 clips as on 25,000")
    model.add_argument("--min-epoch-steps", type=positive_int, default=32,
                       help="optimizer steps an epoch has at least (default 32)")
    model.add_argument("--batch-size", type=positive_int, default=64, help="crops per step (default 64)")
    model.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default 2e-3)")
    model.add_argument("--patience", type=positive_int, default=6, help="epochs without a better validation log loss before stopping (default 6); validation scores "
                            "the bias-corrected output predict.py writes, after batch-norm statistics are "
                            "recomputed on clean training crops")
    model.add_argument("--channels", default="32,64,128,256", help="CNN widths, one residual block each (default 32,64,128,256)")
    model.add_argument("--chunk-seconds", default="3,2,4", help="crop lengths, cycled over members (default 3,2,4)")
    model.add_argument("--balance", default="sqrt", choices=["sqrt", "none"], help="class-balanced sampling (default sqrt)")
    model.add_argument("--n-mels", type=positive_int, default=128, help="CNN mel bands (default 128)")
    model.add_argument("--hop-length", type=positive_int, default=256, help="CNN hop at 16 kHz (default 256)")
    model.add_argument("--seed", type=non_negative_int, default=0, help="member i uses seed + i (default 0)")
    transfer = parser.add_argument_group("transfer learning (pretrained musicnn taggers, see model/musicnn.py)")
    transfer.add_argument("--backbone", default="none", choices=["none", "musicnn"],
                          help="also train genre heads on the pretrained taggers' embedding (default none)")
    transfer.add_argument("--backbone-members", type=positive_int, default=2, help="such members (default 2)")
    transfer.add_argument("--fine-tune", action="store_true", help="train the taggers too (10x lower learning rate)")
    transfer.add_argument("--backbone-lr", type=float, default=1e-3, help="peak learning rate of the heads (default 1e-3)")
    transfer.add_argument("--backbone-weights", default=str(HERE / "weights" / "musicnn" / "musicnn_pair.pt"),
                          help="converted taggers (default weights/musicnn/musicnn_pair.pt)")
    transfer.add_argument("--max-chunks", type=positive_int, default=4,
                          help="3-s chunks a musicnn member scores per clip, spread over it (default 4)")
    run = parser.add_argument_group("machine")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="auto: CUDA if a kernel really runs there, else CPU (default auto)")
    run.add_argument("--workers", type=non_negative_int, default=None,
                     help="cache-building processes (default: usable cores)")
    args = parser.parse_args(argv)
    if args.members == 0 and args.backbone == "none":
        parser.error("--members 0 leaves nothing to train: add --backbone musicnn, or train at least one CNN")
    if args.backbone == "musicnn" and not Path(args.backbone_weights).is_file():
        parser.error(f"--backbone-weights {args.backbone_weights} does not exist (tools/convert_musicnn.py writes it)")
    if not args.labels and not (args.metadata and args.audio):
        parser.error("give --metadata and --audio (FMA), or --labels (with --audio for crowdAI's track_id,genre)")
    try:
        args.channels = [int(c) for c in args.channels.split(",")]
        args.chunk_seconds = [float(c) for c in args.chunk_seconds.split(",")]
    except ValueError:
        parser.error("--channels and --chunk-seconds take comma-separated numbers, e.g. 32,64,128 and 3,2,4")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Heavy imports here: cache workers re-import this script when they start.
    import numpy as np
    import torch

    from model import fma
    from model.calibration import fit_temperature, output_log_loss, output_probabilities
    from model.device import DeviceError, choose_device, usable_cores
    from model.ensemble import Manifest, MemberSpec, place_base_weights, save_ensemble
    from model.features import build_caches
    from model.genres import GENRES
    from model.metrics import confusion_png, scores
    from model.musicnn import MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM
    from model.spectrogram import SpectrogramConfig
    from model.training import ClipSet, FeatureStore, MemberConfig, class_prior, predict_clips, train_member

    prog, started = "train.py", time.perf_counter()
    warnings.simplefilter("always")
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
    try:
        tracks = fma.load_labelled_audio(args.metadata, args.audio, args.labels, args.subset, args.seed)
    except fma.DataError as error:
        die(prog, str(error))
    counts = tracks["split"].value_counts()
    print(f"{len(tracks)} labelled tracks with audio: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in fma.SPLITS),
          file=sys.stderr)

    try:
        run_dir = choose_run_dir(args.run_dir, args.resume, HERE / "runs")
    except ValueError as error:
        die(prog, str(error), 2)
    print(f"checkpoints: {run_dir}" + (" (resuming)" if args.resume else ""), file=sys.stderr)
    try:
        device, warning = choose_device(args.device)
    except DeviceError as error:
        die(prog, str(error))
    if warning:
        print(warning, file=sys.stderr)

    # 1. Members: CNNs diverse by seed and crop length; heads on the pretrained taggers if asked.
    spectrogram = SpectrogramConfig(n_mels=args.n_mels, hop_length=args.hop_length)
    plans = [(MemberConfig(
        name=f"cnn{i}", hparams={"channels": args.channels, "dropout": 0.3},
        chunk_seconds=args.chunk_seconds[i % len(args.chunk_seconds)], seed=args.seed + i,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience, balance=args.balance,
        min_epoch_steps=args.min_epoch_steps,
    ), "cnn", spectrogram) for i in range(args.members)]
    if args.backbone == "musicnn":
        plans += [(MemberConfig(
            name=f"musicnn{j}", architecture="musicnn_transfer",
            hparams={"hidden": 256, "dropout": 0.5, "fine_tune": args.fine_tune},
            chunk_seconds=MUSICNN_CHUNK_SECONDS, seed=args.seed + 1000 + j, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.backbone_lr, patience=args.patience, balance=args.balance,
            min_epoch_steps=args.min_epoch_steps,
            max_chunks=args.max_chunks, backbone_weights=str(Path(args.backbone_weights).resolve()),
        ), "transfer", MUSICNN_SPECTROGRAM) for j in range(args.backbone_members)]

    # 2. Features: decode + log-mel every track once per spectrogram config; every member trains
    #    and is evaluated on the same clips (those every cache could use).
    workers = args.workers if args.workers is not None else usable_cores()
    configs = list(dict.fromkeys(config for _, _, config in plans))
    caches = build_caches(args.cache, configs, tracks[["key", "path"]], workers)
    usable_keys = set.intersection(*(set(cache.ok()["key"]) for cache in caches.values()))
    usable = tracks[tracks["key"].isin(usable_keys)]
    label_of = {genre: i for i, genre in enumerate(GENRES)}

    def clip_set(config: SpectrogramConfig, split: str) -> ClipSet:
        rows = usable[usable["split"] == split].merge(caches[config].ok()[["key", "offset", "frames"]], on="key")
        return ClipSet(torch.tensor(rows["offset"].values, dtype=torch.long),
                       torch.tensor(rows["frames"].values, dtype=torch.long),
                       torch.tensor(rows["genre"].map(label_of).values, dtype=torch.long))

    splits = {config: {split: clip_set(config, split) for split in fma.SPLITS} for config in configs}
    train, valid, test = (splits[configs[0]][split] for split in fma.SPLITS)
    if len(train.labels) == 0 or len(valid.labels) == 0:
        die(prog, "need usable tracks in both the training and the validation split")
    stores = {config: FeatureStore(caches[config].data, device, config.compression) for config in configs}
    print(f"training on {device} ({'features on the GPU' if all(s.on_device for s in stores.values()) else 'features memory-mapped'}): "
          f"{len(train.labels)} train / {len(valid.labels)} validation / {len(test.labels)} test clips",
          file=sys.stderr)

    # 3. Train each member (resumable per epoch), keep its validation and test log-probabilities.
    run_dir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    members, states, valid_log_probs, test_log_probs, histories = [], {}, [], [], {}
    for config, kind, member_spectrogram in plans:
        store, clips = stores[member_spectrogram], splits[member_spectrogram]
        chunk = member_spectrogram.seconds_to_frames(config.chunk_seconds)
        try:
            network, histories[config.name] = train_member(config, store, clips["training"], clips["validation"],
                                                           chunk, run_dir / f"{config.name}.ckpt")
        except ValueError as error:
            die(prog, str(error))
        state, base = network.state_dict(), {}
        if config.backbone_weights and not config.hparams.get("fine_tune"):
            # frozen taggers: the member refers to the pretrained file and keeps only what it learned
            try:
                name, digest = place_base_weights(out, config.backbone_weights)
            except ValueError as error:
                die(prog, str(error))
            pretrained = torch.load(config.backbone_weights, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if k not in pretrained or not torch.equal(v.cpu(), pretrained[k])}
            base = {"base_state_dict": name, "base_sha256": digest}
        members.append(MemberSpec(name=config.name, kind=kind, architecture=config.architecture,
                                  hparams=config.hparams, spectrogram=member_spectrogram,
                                  chunk_seconds=config.chunk_seconds, max_chunks=config.max_chunks, **base))
        states[config.name] = state
        valid_log_probs.append(predict_clips(network, store, clips["validation"], chunk, correction=None,
                                             max_chunks=config.max_chunks).cpu())
        if len(test.labels):
            test_log_probs.append(predict_clips(network, store, clips["test"], chunk, correction=None,
                                                max_chunks=config.max_chunks).cpu())

    # 4. Ensemble: one temperature fitted on validation, through the rule prediction applies.
    valid_log_probs = torch.stack(valid_log_probs)
    temperature = fit_temperature(valid_log_probs, valid.labels)
    valid_loss = output_log_loss(valid_log_probs, valid.labels, temperature).item()
    print(f"ensemble: temperature {temperature:.3f}, validation log loss {valid_loss:.4f} "
          f"(what predict.py's output scores on the {len(valid.labels)} validation clips)", file=sys.stderr)
    prior = class_prior(train.labels)
    manifest = Manifest(
        classes=GENRES, sample_rate=spectrogram.sample_rate, temperature=temperature,
        class_prior=tuple(float(p) for p in prior), members=tuple(members),
        description=f"{', '.join(m.name for m in members)} trained by train.py on "
                    f"{len(train.labels)} clips ({'FMA ' + args.subset if args.metadata else args.labels})",
    )

    # 5. Report on the test split (validation when there is no test split).
    eval_name, eval_labels, eval_log_probs = ("test", test.labels, torch.stack(test_log_probs)) \
        if len(test.labels) else ("validation", valid.labels, valid_log_probs)
    labels = eval_labels.numpy()

    def probs(member_log_probs: torch.Tensor, t: float = 1.0) -> np.ndarray:
        return output_probabilities(member_log_probs, t).numpy()  # the rows predict.py would write

    report = {
        "split": eval_name, "temperature": temperature, "validation_log_loss": valid_loss, "members": {},
        "ensemble_before_temperature": scores(labels, probs(eval_log_probs)),
        "ensemble": scores(labels, probs(eval_log_probs, temperature)),
        "prior_log_loss": scores(labels, probs(prior.log()[None, None].expand(1, len(labels), -1)))["log_loss"],
        "history": histories,
    }
    for spec, log_probs in zip(members, eval_log_probs):
        history = histories[spec.name]
        best = min(history, key=lambda epoch: epoch["valid_loss"])
        report["members"][spec.name] = {"kind": spec.kind, "chunk_seconds": spec.chunk_seconds,
                                        "epochs": len(history), "best_epoch": best["epoch"],
                                        "validation_log_loss": best["valid_loss"], **scores(labels, probs(log_probs[None]))}

    save_ensemble(out, manifest, states)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    confusion_png(report["ensemble"]["confusion"], out / "confusion.png",
                  f"ensemble on the {eval_name} split: log loss {report['ensemble']['log_loss']:.3f}, "
                  f"macro F1 {report['ensemble']['macro_f1']:.3f}")

    print(f"\n{eval_name} split ({len(labels)} clips); class-prior log loss {report['prior_log_loss']:.3f}")
    print("| model | epochs (best) | log loss | macro F1 | accuracy | ECE |\n|---|---|---|---|---|---|")
    rows = [(name, f"{r['epochs']} ({r['best_epoch']})", r) for name, r in report["members"].items()]
    rows += [("ensemble, T=1", "", report["ensemble_before_temperature"]),
             (f"ensemble, T={temperature:.2f}", "", report["ensemble"])]
    for name, epochs, r in rows:
        print(f"| {name} | {epochs} | {r['log_loss']:.3f} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | {r['ece']:.3f} |")
    print(f"\nwrote {out}/manifest.json (+{len(states)} state dicts), report.json, confusion.png "
          f"in {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)
    return 0



def choose_run_dir(run_dir: str | None, resume: bool, root: Path) -> Path:
    """Where this run's checkpoints go. Given: that folder, refused if it holds another run's
    checkpoints and this is no --resume. Not given: a fresh root/<date>-<time>/, or with --resume
    the newest folder in root that holds checkpoints. Raises ValueError with the message."""
    if run_dir is not None:
        path = Path(run_dir)
        if path.exists() and any(path.glob("*.ckpt")) and not resume:
            raise ValueError(f"{path} holds checkpoints of an earlier run: pass --resume to continue it, "
                             "or choose another --run-dir")
        return path
    if resume:
        runs = sorted((d for d in root.glob("*") if d.is_dir() and any(d.glob("*.ckpt"))), key=lambda d: d.name)
        if not runs:
            raise ValueError(f"--resume: no run with checkpoints in {root}; name it with --run-dir")
        return runs[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        die("train.py", "interrupted. Finished epochs are checkpointed in --run-dir and decoded tracks cached "
                        "in --cache: the same command with --resume goes on from there", 130)
