"""One decode path, correct on the mp3s that break the fast decoder."""

import time

import numpy as np
import pytest
import soundfile as sf

from conftest import (
    dominant_frequency,
    exit_on_short_clip,
    hang_on_short_clip,
    signal,
    write_mp3,
    write_vbr_without_xing,
)
from model.audio import DecodeError, decode, decode_many, stream, unusable_reason

RATE = 16000


@pytest.mark.parametrize("native_rate", [44100, 48000, 22050, 16000, 8000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("vbr", [False, True])
def test_rates_channels_modes_decode_to_model_rate(tmp_path, native_rate, channels, vbr):
    freq = 440.0 if native_rate > 8000 else 300.0
    path = write_mp3(tmp_path / "clip.mp3", signal(2, native_rate, channels, freq), native_rate, vbr)
    decoded = decode(path, RATE)
    assert decoded.sample_rate == RATE and decoded.audio.dtype == np.float32 and decoded.audio.ndim == 1
    assert decoded.seconds == pytest.approx(2.0, abs=0.06)
    assert dominant_frequency(decoded.audio, RATE) == pytest.approx(freq, abs=2)
    assert 0.2 < np.abs(decoded.audio).max() < 0.7  # mono is the channel mean, not the sum


@pytest.mark.parametrize("native_rate", [44100, 22050])
def test_vbr_without_xing_header_decodes_to_full_length(tmp_path, native_rate):
    path = write_vbr_without_xing(tmp_path / "vbr.mp3", signal(30, native_rate), native_rate)
    truncated = sf.read(path)[0]
    assert len(truncated) < 0.9 * 30 * native_rate, "soundfile no longer truncates: the test proves nothing"
    decoded = decode(path, RATE)
    assert decoded.decoder == "pyav"
    assert decoded.seconds == pytest.approx(30.0, abs=0.1)
    assert np.abs(decoded.audio[-RATE:]).max() > 0.2  # the end of the clip is real audio


def test_garbage_in_the_middle_is_decoded_around(clips):
    decoded = decode(clips["garbage_mid"], RATE)
    assert decoded.seconds == pytest.approx(30.0, abs=0.2)
    second_half = decoded.audio[len(decoded.audio) // 2 + RATE :]
    assert np.sqrt(np.mean(second_half**2)) > 0.2


def test_thirty_second_cbr_and_cover_art(clips):
    assert decode(clips["cbr30"], RATE).seconds == pytest.approx(30.0, abs=0.06)
    decoded = decode(clips["cover_art"], RATE)  # 8 MB ID3 picture in front of the audio
    assert decoded.seconds == pytest.approx(10.0, abs=0.06)
    assert decoded.audio.base is None or decoded.audio.base.nbytes < 2 * decoded.audio.nbytes


def test_truncated_file_yields_the_audio_before_the_cut(clips):
    decoded = decode(clips["truncated"], RATE)
    assert 13.0 < decoded.seconds < 16.0


@pytest.mark.parametrize(
    "name, reason",
    [("empty", "empty file"), ("random", "not an audio file")],
)
def test_undecodable_files_raise_with_a_clear_reason(clips, name, reason):
    with pytest.raises(DecodeError, match=reason) as error:
        decode(clips[name], RATE)
    assert error.value.path == str(clips[name]) and not error.value.transient


def test_missing_file_raises(tmp_path):
    with pytest.raises(DecodeError, match="cannot read the file") as error:
        decode(tmp_path / "nope.mp3", RATE)
    assert error.value.transient  # a resumed run tries it again


def test_wav_renamed_mp3_is_accepted(clips):
    assert decode(clips["wav_renamed"], RATE).seconds == pytest.approx(3.0, abs=0.01)


def test_silent_and_short_clips_decode_but_are_unusable(clips):
    silent = decode(clips["silent"], RATE)
    assert silent.seconds == pytest.approx(5.0, abs=0.06)
    assert "silent" in unusable_reason(silent)
    short = decode(clips["short"], RATE)
    assert short.seconds < 1.0 and "too short" in unusable_reason(short)
    assert unusable_reason(decode(clips["cbr30"], RATE)) is None


@pytest.mark.slow
def test_ten_minute_mp3(tmp_path):
    path = write_mp3(tmp_path / "long.mp3", signal(600, 22050, channels=1), 22050)
    assert decode(path, RATE).seconds == pytest.approx(600.0, abs=0.1)


def test_decoding_stops_at_max_seconds_with_either_decoder(clips):
    cbr = decode(clips["cbr30"], RATE, max_seconds=12, spread=False)
    assert cbr.decoder == "soundfile" and cbr.seconds == 12.0
    vbr = decode(clips["vbr_no_xing30"], RATE, max_seconds=20, spread=False)  # soundfile stops at ~16.6 s
    assert vbr.decoder == "pyav" and vbr.seconds == 20.0
    assert np.abs(vbr.audio[-RATE:]).max() > 0.2


def test_a_long_file_gives_excerpts_spread_from_its_start_to_its_end(tmp_path):
    """A file longer than max_seconds (here 4 minutes, max 20 s): 20 excerpts of 1 s found by
    seeking, the first at the start and the last ending at the end; each minute has its own
    tone, so every excerpt's pitch says where it came from."""
    minutes = [signal(60, 22050, channels=1, freq=300 + 100 * m) for m in range(4)]
    path = write_mp3(tmp_path / "set.mp3", np.concatenate(minutes), 22050)
    decoded = decode(path, RATE, max_seconds=20)
    assert decoded.decoder == "pyav, 20 excerpts over 0:04:00" and decoded.seconds == pytest.approx(
        20, abs=0.05
    )
    starts = [i * (240 - 1) / 19 for i in range(20)]
    for i, start in enumerate(starts):
        if int(start) % 60 < 59:  # not astride a change of tone
            excerpt = decoded.audio[i * RATE + RATE // 10 : (i + 1) * RATE - RATE // 10]
            assert dominant_frequency(excerpt, RATE) == pytest.approx(300 + 100 * (start // 60), abs=15), i
    first = decode(path, RATE, max_seconds=20, spread=False)  # segments' way: the file's own times
    assert first.decoder == "soundfile" and first.seconds == 20.0


def test_a_sample_rate_change_mid_stream_keeps_pitch_and_length(tmp_path):
    """Two mp3s glued together (44.1 kHz, then 22.05 kHz): soundfile stops at the change, PyAV
    goes on, and the second part must be resampled, not played an octave off."""
    first = write_mp3(tmp_path / "a.mp3", signal(5, 44100, freq=440), 44100).read_bytes()
    second = write_mp3(tmp_path / "b.mp3", signal(5, 22050, freq=880), 22050).read_bytes()
    path = tmp_path / "glued.mp3"
    path.write_bytes(first + second)
    decoded = decode(path, RATE)
    assert decoded.decoder == "pyav" and decoded.seconds == pytest.approx(10, abs=0.2)
    assert dominant_frequency(decoded.audio[RATE : 4 * RATE], RATE) == pytest.approx(440, abs=3)
    assert dominant_frequency(decoded.audio[6 * RATE : 9 * RATE], RATE) == pytest.approx(880, abs=3)
    streamed = np.concatenate(list(stream(path, RATE, block_seconds=2)))  # the same, block by block
    assert len(streamed) == pytest.approx(len(decoded.audio), abs=RATE // 50)
    assert dominant_frequency(streamed[6 * RATE : 9 * RATE], RATE) == pytest.approx(880, abs=3)


def test_stream_reads_a_file_whole_in_blocks_with_the_samples_decode_gives(clips, tmp_path):
    """Blocks of about `block_seconds`, the last one shorter; joined, the samples `decode` gives
    (soxr's stream resamples as the whole does). A file without audio raises as decode does."""
    whole = decode(clips["cbr30"], RATE)
    blocks = list(stream(clips["cbr30"], RATE, block_seconds=4))
    assert all(4 * RATE <= len(b) < 4.2 * RATE for b in blocks[:-1]) and len(blocks[-1]) < 4.2 * RATE
    joined = np.concatenate(blocks)
    assert len(joined) == pytest.approx(len(whole.audio), abs=RATE // 100)
    n = min(len(joined), len(whole.audio))
    assert np.abs(joined[:n] - whole.audio[:n]).max() < 1e-4
    with pytest.raises(DecodeError, match="not an audio file"):
        next(stream(clips["random"], RATE))


@pytest.mark.parametrize("workers", [0, 2])
def test_decode_many_keeps_order_and_returns_errors(clips, workers):
    names = ["cbr30", "empty", "short", "random", "silent"]
    results = list(decode_many([clips[n] for n in names], RATE, workers=workers, prefetch=1))
    assert [path for path, _ in results] == [clips[n] for n in names]
    kinds = [type(result).__name__ for _, result in results]
    assert kinds == ["Decoded", "DecodeError", "Decoded", "DecodeError", "Decoded"]
    assert "empty file" in results[1][1].reason


def test_a_worker_that_dies_costs_only_its_own_file(clips):
    names = ["cbr30", "silent", "short", "cover_art", "empty", "wav_renamed"]
    results = list(
        decode_many([clips[n] for n in names], RATE, workers=2, prefetch=2, transform=exit_on_short_clip)
    )
    assert [path for path, _ in results] == [clips[n] for n in names]
    outcome = dict(zip(names, (result for _, result in results)))
    assert (
        isinstance(outcome["short"], DecodeError)
        and "worker process died, exit code 3" in outcome["short"].reason
        and outcome["short"].transient
    )
    assert isinstance(outcome["empty"], DecodeError) and "empty file" in outcome["empty"].reason
    assert outcome["cbr30"] == pytest.approx(30, abs=0.1) and outcome["silent"] == pytest.approx(5, abs=0.1)
    assert outcome["cover_art"] == pytest.approx(10, abs=0.1) and outcome["wav_renamed"] == pytest.approx(
        3, abs=0.01
    )


def test_a_worker_that_hangs_times_out_and_costs_only_its_own_file(clips):
    names = ["cbr30", "short", "silent", "cover_art", "wav_renamed"]
    start = time.perf_counter()
    results = list(
        decode_many(
            [clips[n] for n in names], RATE, workers=2, prefetch=1, transform=hang_on_short_clip, timeout=3
        )
    )
    assert time.perf_counter() - start < 60  # the hung file was stopped, not waited for
    assert [path for path, _ in results] == [clips[n] for n in names]
    outcome = dict(zip(names, (result for _, result in results)))
    assert isinstance(outcome["short"], DecodeError) and "timed out" in outcome["short"].reason
    assert outcome["short"].transient
    assert outcome["cbr30"] == pytest.approx(30, abs=0.1) and outcome["silent"] == pytest.approx(5, abs=0.1)
    assert outcome["cover_art"] == pytest.approx(10, abs=0.1) and outcome["wav_renamed"] == pytest.approx(
        3, abs=0.01
    )


def test_stopping_early_leaves_no_worker_behind(clips):
    import multiprocessing

    results = decode_many([clips["cbr30"]] * 6, RATE, workers=2, prefetch=1)
    next(results)
    results.close()  # the consumer gives up (an exception, a ^C): the pool must go with it
    assert multiprocessing.active_children() == []


def test_decoding_in_this_process_keeps_the_per_file_timeout(clips):
    """workers=0 (predict.py --workers 0): the same timeout, by SIGALRM; the alarm is disarmed after."""
    names = ["short", "cbr30"]
    start = time.perf_counter()
    results = list(
        decode_many([clips[n] for n in names], RATE, workers=0, transform=hang_on_short_clip, timeout=2)
    )
    assert time.perf_counter() - start < 30
    outcome = dict(zip(names, (result for _, result in results)))
    assert isinstance(outcome["short"], DecodeError) and "timed out" in outcome["short"].reason
    assert outcome["short"].transient and outcome["cbr30"] == pytest.approx(30, abs=0.1)
    import signal as signals

    assert signals.getitimer(signals.ITIMER_REAL) == (0.0, 0.0)
    assert signals.getsignal(signals.SIGALRM) == signals.SIG_DFL
