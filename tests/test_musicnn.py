"""The pretrained musicnn taggers: the PyTorch port against the original TensorFlow graph, their
input representation, the zero-shot genre head and the default ensemble built on them."""

import hashlib
import json
import sys

import librosa
import numpy as np
import pytest
import torch

from conftest import REPO
from model.audio_kinds import KINDS, AudioKinds, default_kind_given_genre, fit_audio_kinds, read_audio_kinds
from model.chunking import chunk_starts
from model.ensemble import load_ensemble
from model.genres import GENRES, fma_medium_prior
from model.manifest import ManifestError, load_manifest
from model.musicnn import MUSICNN_CHUNK_FRAMES, MUSICNN_SPECTROGRAM, PAIR_TAGS, MusicnnPair, MusicnnTagger
from model.spectrogram import LogMel
from model.zero_shot import GENRE_TAGS, MusicnnZeroShot, genre_tags_json, read_tag_base_rates

MUSICNN_DIR = REPO / "weights" / "musicnn"
PAIR_FILE = MUSICNN_DIR / "musicnn_pair.pt"


@pytest.fixture(scope="module")
def pair() -> MusicnnPair:
    pair = MusicnnPair().eval()
    pair.load_state_dict(torch.load(PAIR_FILE, weights_only=True))
    return pair


def test_port_reproduces_the_tensorflow_graph(pair):
    """tests/fixtures/musicnn_reference.npz: patches and the original graph's outputs
    (written by tools/convert_musicnn.py with tensorflow-cpu 2.15)."""
    reference = np.load(REPO / "tests" / "fixtures" / "musicnn_reference.npz")
    patches = torch.from_numpy(reference["patches"].astype(np.float32)).transpose(
        1, 2
    )  # -> (n, mels, frames)
    with torch.no_grad():
        for name in ("msd", "mtt"):
            logits, embedding = getattr(pair, name).tags_and_embedding(patches)
            tag_error = np.abs(torch.sigmoid(logits).numpy() - reference[f"{name}_tags"]).max()
            embedding_error = np.abs(embedding.numpy() - reference[f"{name}_embedding"]).max()
            print(f"{name}: max abs error, tags {tag_error:.1e}, embedding {embedding_error:.1e}")
            assert tag_error < 1e-4 and embedding_error < 1e-4
            assert reference[f"{name}_tags"].max() > 0.3  # the reference is not a degenerate all-zero output


def test_fast_front_end_equals_the_literal_layer_order():
    """Inference takes the max over frequency before ReLU and batch-norm; check it against the
    literal conv -> ReLU -> batch-norm -> max, with batch-norm scales of both signs."""
    torch.manual_seed(0)
    tagger = MusicnnTagger().eval()
    for module in tagger.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.weight.data.uniform_(-2, 2)
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    spec = torch.rand(3, 96, 120) * 4
    with torch.no_grad():
        fast = tagger.tags_and_embedding(spec)
        for block in (*tagger.timbral, *tagger.temporal):
            block.training = True  # the literal order; its batch-norm module stays in inference mode
        literal = tagger.tags_and_embedding(spec)
    for a, b in zip(fast, literal):
        assert torch.allclose(a, b, atol=1e-4)


def test_input_is_musicnn_s_librosa_log_mel():
    """musicnn computed log10(1 + 10000 * librosa mel power); our one spectrogram path must match."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    theirs = np.log10(
        1 + 10000 * librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=512, hop_length=256, n_mels=96)
    )
    ours = LogMel(MUSICNN_SPECTROGRAM)(torch.from_numpy(audio)[None])[0].numpy()
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-3


def test_weights_carry_their_provenance_and_licence():
    provenance = json.loads((REPO / "weights" / "musicnn" / "provenance.json").read_text())
    assert provenance["musicnn_pair.pt_sha256"] == hashlib.sha256(PAIR_FILE.read_bytes()).hexdigest()
    assert all(check["tags_max_abs_error"] < 1e-4 for check in provenance["port_check"].values())
    licence = (REPO / "weights" / "musicnn" / "LICENSE-musicnn.txt").read_text()
    assert "Music Technology Group, Universitat Pompeu Fabra" in licence and "Permission to use" in licence


def test_zero_shot_evidence_follows_the_table(monkeypatch):
    """ratio = max over any_of tags of P(tag) / base(tag), x (1 - max P(none_of)) / (1 - max base(none_of));
    the output is its log plus the speech cue's log likelihood."""
    head = MusicnnZeroShot(96, 16)
    head.load_state_dict(torch.load(PAIR_FILE, weights_only=True))
    base = head.tag_base_rates().detach()
    probs = base.clone()[None]  # the average clip: every ratio 1
    setting = {
        "msd:rock": 0.2,
        "msd:punk": 0.7,
        "mtt:rock": 0.05,
        "msd:jazz": 0.4,
        "mtt:voice": 0.8,
        "mtt:drums": 0.25,
    }
    for tag, p in setting.items():
        probs[0, PAIR_TAGS.index(tag)] = p
    no_pauses = torch.zeros(1, 2)  # (pause fraction, syllabic score): nothing speech-like
    monkeypatch.setattr(MusicnnPair, "backbone", lambda self, spec: (torch.logit(probs), None, no_pauses))
    with torch.no_grad():
        ratios = (
            head(torch.zeros(1, 96, MUSICNN_CHUNK_FRAMES)) - head.cue_likelihood(no_pauses).log()
        ).exp()[0]
    by_genre, rate = dict(zip(GENRES, ratios.tolist())), lambda tag: base[PAIR_TAGS.index(tag)].item()
    # the strongest hallmark, each tag against its own base rate (not the mean, not another tag's base)
    assert by_genre["Rock"] == pytest.approx(
        max(0.7 / rate("msd:punk"), 0.2 / rate("msd:rock"), 0.05 / rate("mtt:rock")), rel=1e-4
    )
    assert by_genre["Jazz"] == pytest.approx(0.4 / rate("msd:jazz"), rel=1e-4)
    spoken_none = ("mtt:beat", "mtt:drums", "mtt:guitar", "mtt:piano", "mtt:synth", "mtt:strings")
    others = max(rate(t) for t in spoken_none if t != "mtt:drums")
    assert by_genre["Spoken"] == pytest.approx(  # a voice, held back by drums
        0.8 / rate("mtt:voice") * (1 - max(0.25, others)) / (1 - max(rate(t) for t in spoken_none)), rel=1e-4
    )
    assert by_genre["Blues"] == pytest.approx(1.0, rel=1e-4)


def test_the_speech_cue_moves_the_odds_of_spoken_and_nothing_else():
    from model.zero_shot import CUE_GIVEN_MUSIC, CUE_GIVEN_SPEECH

    head = MusicnnZeroShot(96, 16)
    likelihood = head.cue_likelihood(torch.tensor([[0.0, 0.0], [0.05, 1.0], [0.3, 1.0]]))  # pauses count here
    spoken = GENRES.index("Spoken")
    music = [i for i in range(16) if i != spoken]
    assert torch.allclose(
        likelihood[:, music], likelihood[:, music[:1]].expand(-1, 15)
    )  # one value for music
    odds = likelihood[:, spoken] / likelihood[:, music[0]]  # Spoken against any music genre
    assert odds[0] == pytest.approx((1 - CUE_GIVEN_SPEECH) / (1 - CUE_GIVEN_MUSIC))  # no pauses: 1/10
    assert odds[2] == pytest.approx(CUE_GIVEN_SPEECH / CUE_GIVEN_MUSIC)  # pause-rich: 90
    assert odds[0] < odds[1] < odds[2]


def test_pause_fraction_tells_speech_like_gaps_from_sustained_sound():
    from model.spectrogram import LogMel
    from model.speech import pause_fraction

    rate, rng = 16000, np.random.default_rng(0)
    t = np.arange(3 * rate) / rate
    sustained = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    words = 0.3 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.5 * t) > 0.3)  # bursts and gaps
    words += 1e-4 * rng.standard_normal(len(t))  # a noise floor, 70 dB down
    spec = LogMel(MUSICNN_SPECTROGRAM)(torch.tensor(np.stack([sustained, words]), dtype=torch.float32))
    fractions = pause_fraction(spec[:, :, :MUSICNN_CHUNK_FRAMES])
    assert fractions[0] == 0 and 0.3 < fractions[1] < 0.7, fractions


def test_the_counted_rule_compares_each_tags_odds_with_its_counted_base_rate():
    """Bayes factors: odds(P) / odds(base) for the strongest any_of tag, over the strongest none_of
    tag's factor; mixed with 1 by the genre's coverage."""
    from model.zero_shot import read_tag_base_rates

    rates = read_tag_base_rates(REPO / "weights" / "musicnn" / "tag_base_rates.json")
    head = MusicnnZeroShot(96, 16, genre_tags_json(counted=True), rates, "syllables and pauses")
    base = torch.tensor([rates[t] for t in PAIR_TAGS])[None]
    assert torch.allclose(head.tag_ratios(base), torch.ones(1, 16), atol=1e-5)  # the average clip: 1
    probs = base.clone()
    setting = {"msd:rock": 0.5, "msd:punk": 0.2, "msd:oldies": 0.9, "mtt:voice": 0.6, "mtt:guitar": 0.5}
    for tag, p in setting.items():
        probs[0, PAIR_TAGS.index(tag)] = p
    by_genre = dict(zip(GENRES, head.tag_ratios(probs)[0].tolist()))

    def factor(tag: str) -> float:
        p, b = setting[tag], rates[tag]
        return (p / (1 - p)) / (b / (1 - b))

    assert by_genre["Rock"] == pytest.approx(
        0.1 + 0.9 * max(factor("msd:rock"), factor("msd:punk")), rel=1e-4
    )
    assert by_genre["Old-Time / Historic"] == pytest.approx(0.8 + 0.2 * factor("msd:oldies"), rel=1e-4)
    assert by_genre["Spoken"] == pytest.approx(
        0.1 + 0.9 * factor("mtt:voice") / factor("mtt:guitar"), rel=1e-4
    )
    assert by_genre["Jazz"] == pytest.approx(1.0, rel=1e-4)  # its tag at its base rate: no evidence


def test_the_counted_base_rates_are_the_taggers_label_frequencies():
    """weights/musicnn/tag_base_rates.json: all 100 tags, with where they were counted; MTT
    "classical" 0.136 (the shipped estimate from the weights says 0.02)."""
    from model.zero_shot import read_tag_base_rates

    path = REPO / "weights" / "musicnn" / "tag_base_rates.json"
    rates = read_tag_base_rates(path)
    assert len(rates) == 100 and rates["mtt:classical"] == 0.136 and rates["msd:rock"] == 0.196
    assert "musicnn-training" in json.loads(path.read_text())["provenance"]["source"]
    estimate = MusicnnZeroShot(96, 16)
    estimate.load_state_dict(torch.load(PAIR_FILE, weights_only=True))
    assert estimate.tag_base_rates()[PAIR_TAGS.index("mtt:classical")] < 0.03
    with pytest.raises(ValueError, match="tag_base_rates needs each of the 100 tags"):
        MusicnnZeroShot(96, 16, tag_base_rates={"msd:rock": 0.2})
    with pytest.raises(ValueError, match="speech_cue must be one of"):
        MusicnnZeroShot(96, 16, speech_cue="laughter")


def test_the_two_cue_speech_likelihoods_follow_their_cells():
    """The counted cue: syllables and pauses together are the strongest evidence for speech,
    pauses alone (music with rests has them) almost none."""
    from model.zero_shot import SPEECH_CUES

    head = MusicnnZeroShot(96, 16, speech_cue="syllables and pauses")
    measures = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.0, 1.0], [0.3, 1.0]])  # (pauses, syllabic)
    likelihood = head.cue_likelihood(measures)
    spoken, music = likelihood[:, GENRES.index("Spoken")], likelihood[:, GENRES.index("Rock")]
    cells = SPEECH_CUES["syllables and pauses"]
    expected = [
        cells["given_speech"][s][p] / cells["given_music"][s][p] for s, p in ((0, 0), (0, 1), (1, 0), (1, 1))
    ]
    assert torch.allclose(spoken / music, torch.tensor(expected), rtol=1e-5)
    odds = (spoken / music).tolist()
    assert odds[0] < 0.1 and 0.5 < odds[1] < 2 and odds[3] > 30


def test_syllables_tell_speech_from_music_with_rests():
    """Generated: syllable-like bursts (with no gaps, and under a bed 20 dB down) score as
    syllabic; a sustained chord, a decaying note every second with rests between, and drums over
    a chord do not. (Bare drum hits would: Spoken's none_of tags, drums and beat, answer those.)"""
    from model.spectrogram import LogMel
    from model.speech import speech_features

    rate, rng = 16000, np.random.default_rng(0)
    t = np.arange(3 * rate) / rate
    syllables = np.abs(np.sin(2 * np.pi * 2.5 * t)) ** 3  # 5 syllables a second, dipping to silence
    voice = 0.3 * syllables * np.sin(2 * np.pi * 160 * t + 3 * np.sin(2 * np.pi * 4 * t))
    voice += 0.05 * syllables * rng.standard_normal(len(t))
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 6
    bed = chord * np.sqrt(np.mean(voice**2) / np.mean(chord**2)) * 0.1  # 20 dB below the voice
    phase = t % 1.0
    piano = np.where(phase < 0.5, np.exp(-4 * phase), 0.0) * np.sin(2 * np.pi * 440 * t) * 0.3
    band = chord + np.exp(-40 * (t % 0.5)) * rng.standard_normal(len(t)) * 0.3
    waves = np.stack([voice, voice + bed, chord, piano, band]).astype(np.float32)
    spec = LogMel(MUSICNN_SPECTROGRAM)(torch.from_numpy(waves))[:, :, :MUSICNN_CHUNK_FRAMES]
    syllabic = speech_features(spec)[:, 1]
    assert syllabic[0] > 0.5 and syllabic[1] > 0.5, syllabic
    assert (syllabic[2:] < 0.5).all(), syllabic


def test_the_audio_kinds_detector_learns_kinds_and_reads_them_as_genre_likelihoods():
    """Fitted on three separable clusters, it finds them again, exactly as stored (float32), and a
    genre's likelihood is the sum over kinds of P(kind | genre) x posterior / prior."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 402)) * 3
    kinds = np.repeat(np.arange(3), 60)
    features = centres[kinds] + rng.standard_normal((180, 402))
    fitted = json.loads(json.dumps(fit_audio_kinds(features, kinds, strength=0.01)))  # as written to disk
    detector = AudioKinds(fitted, default_kind_given_genre())
    x = torch.tensor(features, dtype=torch.float32)
    posterior = detector.posterior(x[:, :400], x[:, 400:])
    assert (posterior.argmax(1).numpy() == kinds).all()
    given = torch.tensor([default_kind_given_genre()[genre] for genre in GENRES])
    assert torch.allclose(detector(x[:, :400], x[:, 400:]), (posterior * 3) @ given.T, rtol=1e-5)
    spoken, rock = GENRES.index("Spoken"), GENRES.index("Rock")
    speech = detector(x[:60, :400], x[:60, 400:])  # the speech cluster: Spoken far likelier than Rock
    assert (speech[:, spoken] > 10 * speech[:, rock]).all()
    with pytest.raises(ValueError, match="every kind needs examples"):
        fit_audio_kinds(features[:120], kinds[:120], strength=0.01)


@pytest.mark.parametrize(
    "fitted_change, given_change, message",
    [
        ({"weight": [[0.0] * 10] * 3}, {}, "'weight' must be \\(3, 402\\) finite numbers"),
        ({"scale": None}, {}, "needs 'scale'"),
        ({"prior": [0.5, 0.5, 0.0]}, {}, "'prior' must be positive"),
        ({}, {"Blues": [1.5, -0.5, 0.0]}, "Blues's row \\[1.5, -0.5, 0.0\\] must be 3 probabilities"),
        ({}, {"Blues": [0.5, 0.5, 0.5]}, "Blues's row .* sum to 1"),
        ({}, {"Blues": None}, "needs a row for each of the 16 genres"),
    ],
)
def test_a_bad_detector_in_a_manifest_is_refused_at_load_in_one_line(
    tmp_path, zero_shot_weights, fitted_change, given_change, message
):
    """An edited manifest fails when it loads, never by writing NaN rows later."""
    hparams = json.loads((zero_shot_weights / "manifest.json").read_text())["members"][0]["hparams"]
    fitted = {k: v for k, v in {**hparams["audio_kinds"], **fitted_change}.items() if v is not None}
    given = {k: v for k, v in {**hparams["kind_given_genre"], **given_change}.items() if v is not None}
    _zero_shot_manifest(
        tmp_path, zero_shot_weights, hparams={**hparams, "audio_kinds": fitted, "kind_given_genre": given}
    )
    with pytest.raises(ManifestError, match=message):
        load_ensemble(tmp_path)
    without_given = {k: v for k, v in hparams.items() if k != "kind_given_genre"}
    with pytest.raises(ValueError, match="give both or neither"):
        MusicnnZeroShot(96, 16, **without_given)


def test_the_shipped_detector_was_fitted_on_the_decided_on_packages_only():
    """weights/musicnn/audio_kinds.json: its provenance names training and validation packages of
    tools/real_corpus.py, never a held-out (test) or reserved one."""
    sys.path.insert(0, str(REPO / "tools"))
    from real_corpus_table import RESERVED, SPLITS_BY_PACKAGE

    record = json.loads((MUSICNN_DIR / "audio_kinds.json").read_text())
    packages = record["provenance"]["fitted_on"].split(": ", 1)[1].split(", ")
    assert len(packages) > 10 and list(record["model"]["kinds"]) == list(KINDS)
    assert all(SPLITS_BY_PACKAGE.get(p, "training") != "test" for p in packages), packages
    assert not any(p.startswith(RESERVED) for p in packages)


def test_every_genre_has_evidence_and_every_tag_exists():
    assert sorted(GENRE_TAGS) == sorted(GENRES)
    for genre, (any_of, none_of) in GENRE_TAGS.items():
        assert any_of, genre
        assert set(any_of) | set(none_of) <= set(PAIR_TAGS), genre
    with pytest.raises(ValueError, match="unknown tag 'msd:polka'"):
        MusicnnZeroShot(96, 16, {**genre_tags_json(), "Folk": {"any_of": ["msd:polka"]}})


def test_zero_shot_model_holds_the_documented_table_and_listens(zero_shot_weights):
    ensemble = load_ensemble(zero_shot_weights)
    manifest = ensemble.manifest
    assert manifest.zero_shot_only and [m.kind for m in manifest.members] == ["zero_shot"]
    member = manifest.members[0]
    # the manifest holds the table the code documents, the counted base rates and the detector
    assert member.hparams["genre_tags"] == genre_tags_json(counted=True)
    assert member.hparams["tag_base_rates"] == read_tag_base_rates(MUSICNN_DIR / "tag_base_rates.json")
    assert member.hparams["audio_kinds"] == read_audio_kinds(MUSICNN_DIR / "audio_kinds.json")
    assert member.hparams["kind_given_genre"] == default_kind_given_genre()
    assert list(member.hparams["kind_given_genre"]) == list(GENRES)  # named rows, in the columns' order
    assert member.hparams["speech_cue"] == "syllables and pauses"
    assert member.spectrogram == MUSICNN_SPECTROGRAM and member.state_dict == "musicnn/musicnn_pair.pt"
    assert np.allclose(manifest.class_prior, fma_medium_prior())
    rate = 16000
    t = np.arange(10 * rate) / rate
    clicks = (np.sin(2 * np.pi * 2 * t) > 0.97) * np.random.default_rng(0).standard_normal(len(t))
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 6
    waveforms = torch.tensor(np.stack([clicks, chord]) * 0.5, dtype=torch.float32)
    with torch.inference_mode():
        probs = ensemble(waveforms, [len(t)] * 2).exp().numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.abs(probs[0] - probs[1]).max() > 0.05  # it listens: different music, different genres


@pytest.mark.skipif(
    not load_manifest(REPO / "weights").zero_shot_only,
    reason="weights/ holds a trained ensemble, not the zero-shot default",
)
def test_the_shipped_zero_shot_manifest_is_what_the_tool_writes(zero_shot_weights):
    """tools/zero_shot_ensemble.py regenerates the shipped weights/ exactly."""
    assert (zero_shot_weights / "manifest.json").read_text() == (
        REPO / "weights" / "manifest.json"
    ).read_text()


def _zero_shot_manifest(tmp_path, zero_shot_weights, **changes) -> None:
    data = json.loads((zero_shot_weights / "manifest.json").read_text())
    data["members"][0].update(changes)
    (tmp_path / "musicnn").mkdir(exist_ok=True)
    (tmp_path / "musicnn" / "musicnn_pair.pt").write_bytes(PAIR_FILE.read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"spectrogram": {**MUSICNN_SPECTROGRAM.to_dict(), "n_mels": 128}},
            "was pretrained on the spectrogram",
        ),
        (
            {"spectrogram": {**MUSICNN_SPECTROGRAM.to_dict(), "compression": "db"}},
            "was pretrained on the spectrogram",
        ),
        ({"kind": "cnn"}, "is of kind 'zero_shot', not 'cnn'"),
        ({"state_dict": "../musicnn_pair.pt"}, "must be a path inside the weights folder"),
        ({"max_chunks": 0}, "max_chunks must be a positive integer"),
        ({"sha256": "0" * 64}, "SHA-256"),
    ],
)
def test_bad_zero_shot_members_are_refused(tmp_path, zero_shot_weights, changes, message):
    _zero_shot_manifest(tmp_path, zero_shot_weights, **changes)
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)


def test_an_edited_table_with_an_unknown_tag_is_refused_at_load(tmp_path, zero_shot_weights):
    _zero_shot_manifest(
        tmp_path,
        zero_shot_weights,
        hparams={"genre_tags": {**genre_tags_json(), "Folk": {"any_of": ["msd:polka"]}}},
    )
    with pytest.raises(ManifestError, match="unknown tag 'msd:polka'"):
        load_ensemble(tmp_path)


def test_max_chunks_spreads_a_sample_over_the_clip():
    assert chunk_starts(1876, 187) == chunk_starts(1876, 187, None) and len(chunk_starts(1876, 187)) == 11
    assert chunk_starts(1876, 187, 4) == [0, 563, 1126, 1689]  # first at the start, last at the end
    assert chunk_starts(1876, 187, 1) == [844]  # one chunk: the middle
    assert chunk_starts(100, 187, 4) == [0]


def test_fine_tuning_trains_the_taggers_ten_times_slower(tmp_path):
    """--fine-tune: the taggers learn too, in their own optimizer group at 0.1 x the head's rate."""
    from model.features import ClipSet, FeatureStore
    from model.members import MemberConfig
    from model.training import train_member

    generator = torch.Generator().manual_seed(0)
    frames = torch.full((8,), 200)
    data = (torch.rand(8 * 200, 96, generator=generator) * 4).half().numpy()
    clips = ClipSet(torch.arange(8) * 200, frames, torch.arange(8) % 4)
    store = FeatureStore(data, torch.device("cpu"), compression="log10_1p")
    config = MemberConfig(
        name="ft",
        architecture="musicnn_transfer",
        hparams={"hidden": 16, "fine_tune": True},
        epochs=1,
        batch_size=4,
        min_epoch_steps=2,  # two steps move the taggers; the default 32 only take longer
        batch_norm_crops=8,
        max_chunks=1,
        mixup_alpha=0.0,
        backbone_weights=str(PAIR_FILE),
    )
    network, history = train_member(config, store, clips, clips, MUSICNN_CHUNK_FRAMES, tmp_path / "ft.ckpt")
    pretrained = torch.load(PAIR_FILE, weights_only=True)
    trained = network.state_dict()
    assert not torch.equal(trained["msd.timbral.0.conv.weight"], pretrained["msd.timbral.0.conv.weight"])
    groups = torch.load(tmp_path / "ft.ckpt", weights_only=True)["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"])


def test_frozen_taggers_give_the_head_fp32_embeddings_under_bf16_autocast():
    """Training on a GPU autocasts to bf16; the frozen taggers must still hand the head the very
    embeddings prediction (fp32) will give it. CPU autocast stands in for the GPU's here."""
    from model.networks.musicnn_transfer import MusicnnTransfer

    network = MusicnnTransfer(96, 16, hidden=8)
    network.load_state_dict(torch.load(PAIR_FILE, weights_only=True), strict=False)
    network.eval()
    seen = []
    network.head.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    spec = torch.rand(2, 96, MUSICNN_CHUNK_FRAMES, generator=torch.Generator().manual_seed(0)) * 4
    network(spec)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        network(spec)
    assert seen[1].dtype == torch.float32 and torch.equal(seen[0], seen[1])


def test_members_on_the_same_frozen_taggers_share_one_run_of_them(tmp_path, monkeypatch, zero_shot_weights):
    """zero-shot + two frozen transfer heads: the taggers run once per batch, and the ensemble's
    output equals each member computed on its own; a fine-tuned member runs its own taggers."""
    from model.chunking import make_chunks
    from model.ensemble import clip_logits
    from model.manifest import Manifest, MemberSpec
    from model.musicnn import MUSICNN_CHUNK_SECONDS
    from model.networks.musicnn_transfer import MusicnnTransfer
    from model.saving import save_ensemble

    (tmp_path / "musicnn").mkdir()
    (tmp_path / "musicnn" / "musicnn_pair.pt").write_bytes(PAIR_FILE.read_bytes())
    shipped = load_manifest(zero_shot_weights).members[0]
    common = dict(spectrogram=MUSICNN_SPECTROGRAM, chunk_seconds=MUSICNN_CHUNK_SECONDS, max_chunks=3)
    members, states = [MemberSpec(**{**shipped.__dict__, "max_chunks": 3})], {}
    for i, fine_tune in enumerate((False, False, True)):
        hparams = {"hidden": 8, "fine_tune": fine_tune}
        torch.manual_seed(i)
        network = MusicnnTransfer(96, 16, **hparams)
        network.load_state_dict(torch.load(PAIR_FILE, weights_only=True), strict=False)
        if fine_tune:  # as after fine-tuning: taggers that differ from the pretrained ones
            network.msd.output.bias.data += 0.5
        members.append(
            MemberSpec(name=f"head{i}", architecture="musicnn_transfer", hparams=hparams, **common)
        )
        states[f"head{i}"] = network.state_dict()
    manifest = Manifest(GENRES, 16000, 1.3, tuple(fma_medium_prior()), tuple(members), "sharing test")
    save_ensemble(tmp_path, manifest, states)
    ensemble = load_ensemble(tmp_path)
    keys = ensemble.backbone_keys
    assert keys["musicnn-zero-shot"] == keys["head0"] == keys["head1"] and keys["head2"] is None

    calls, real = [], MusicnnPair.backbone
    monkeypatch.setattr(
        MusicnnPair, "backbone", lambda self, spec: calls.append(len(spec)) or real(self, spec)
    )
    rng = np.random.default_rng(1)
    lengths = [16000 * 12, 16000 * 7]
    waveforms = torch.zeros(2, max(lengths))
    for row, n in enumerate(lengths):
        waveforms[row, :n] = torch.from_numpy(0.2 * rng.standard_normal(n).astype(np.float32))
    with torch.inference_mode():
        shared = ensemble(waveforms, lengths)
        assert len(calls) == 2  # once for the three frozen members, once for the fine-tuned one
        specs = next(iter(ensemble.spectrograms(waveforms).values()))
        chunks, owner = make_chunks(
            specs, [MUSICNN_SPECTROGRAM.frames(n) for n in lengths], MUSICNN_CHUNK_FRAMES, 3
        )
        alone = []
        for member in members:
            logits = clip_logits(ensemble.networks[member.name], chunks, owner, 2)
            logits = logits + ensemble.log_prior if member.kind == "zero_shot" else logits
            alone.append(torch.log_softmax(logits, dim=1))
        expected = torch.log_softmax(torch.stack(alone).mean(0) / 1.3, dim=1)
    assert torch.allclose(shared, expected, atol=1e-5)
