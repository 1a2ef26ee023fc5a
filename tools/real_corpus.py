#!/usr/bin/env python3
"""Build, once, a labelled corpus of real recordings from Debian packages: game soundtracks, voice
prompts, spoken dialogue and synthetic speech, so that the models can be checked on real audio
that is neither FMA's nor generated tones.

    python tools/real_corpus.py                        # -> real-corpus/: clips/<package>/*.mp3 + labels.csv
    python tools/real_corpus.py --debs debs/           # keep the downloaded .debs for a later rebuild

Each entry of TABLE names a package, a glob of its files and the genre a listener would name,
taken from the package's own words (description, credits, the genre tag its composer wrote into
the file) and what is publicly known of the soundtrack, never from a model's output, so that the
labels are an independent check. Each track gives one 30-s excerpt from its middle (the whole
track if shorter; under 8 s it is dropped); entries of genres with few tracks ask for two or
three excerpts spread over the track. Voice prompts of a few seconds are joined, in file order
with short pauses, into ~25-s clips: what speech sounds like.

The split is by package, as FMA's artist filter is by artist: every package lies wholly in one
split (SPLITS_BY_PACKAGE; unlisted packages train), and the tool refuses a table in which a genre
with three or more packages lacks one in training, validation or test. Packages reserved for an independent
check (RESERVED) are refused outright.

`labels.csv` has `path,genre,split,source,title` (paths relative to the output folder):
`train.py --labels real-corpus/labels.csv` takes it as it is. Resumable: a package whose clips
are already there is skipped on a rerun (a marker per package in .done/); a package that fails
to download is reported and skipped. Needs `apt-get` and `dpkg` (Debian or Ubuntu), no root.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.audio import Decoded, DecodeError, decode, unusable_reason  # noqa: E402
from model.cli import ArgumentParser  # noqa: E402
from model.fma import SPLITS  # noqa: E402
from model.genres import GENRES  # noqa: E402

RATE = 44100  # clips are written as 44.1 kHz mono mp3, FMA's rate
CLIP_SECONDS = 30.0
MIN_SECONDS = 8.0  # shorter tracks are dropped (the grader's shortest real clip is 7.45 s)
SPEECH_SECONDS = 25.0  # joined prompts stop growing here
PAUSE_SECONDS = 0.4  # between joined prompts
AUDIO = (
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".flac",
    ".wav",
    ".gsm",
)  # no tracker modules: nothing here decodes them

# Kept out of this corpus entirely: an independent check uses them.
RESERVED = ("fretsonfire-songs-", "nexuiz-music", "wesnoth-", "asterisk-core-sounds-")


@dataclass(frozen=True)
class Entry:
    package: str
    genre: str
    files: str  # glob under the unpacked package (or, with `archive`, of the archive's members)
    archive: str | None = None  # a .pk3 (zip) or Qt .rcc file in the package that holds the files
    exclude: str | None = None  # glob of matches to leave out
    excerpts: int = 1  # 30-s excerpts per track, spread over it
    speech: bool = False  # short files joined into ~25-s clips
    limit: int | None = None  # at most this many clips (speech: spread over the sorted files)


STK = "usr/share/games/supertuxkart/data/music/"
NAEV = "usr/share/naev/dat/snd/music/"
CLONK = "usr/share/games/openclonk/Music.ocg/"
WIDELANDS = "usr/share/games/widelands/data/music/"
GCOMPRIS = ("usr/share/gcompris-qt/rcc/explore_world_music.rcc", "*/explore_world_music/resource/music/")
HEDGEWARS = "usr/share/games/hedgewars/Data/"
ASTERISK = "usr/share/asterisk/sounds/"

TABLE: tuple[Entry, ...] = (
    # ---- Electronic -------------------------------------------------------------------------
    # Kenta Cho's (ABA Games) shoot-'em-ups: his own synthesised techno loops as background music.
    Entry("a7xpg-data", "Electronic", "usr/share/games/a7xpg/sounds/bgm*.ogg"),
    Entry("gunroar-data", "Electronic", "usr/share/games/gunroar/sounds/musics/*.ogg"),
    Entry("mu-cade-data", "Electronic", "usr/share/games/mu-cade/sounds/musics/*.ogg"),
    Entry("noiz2sa-data", "Electronic", "usr/share/games/noiz2sa/sounds/stg*.ogg"),
    Entry("parsec47-data", "Electronic", "usr/share/games/parsec47/sounds/ptn*.ogg"),
    Entry("rrootage-data", "Electronic", "usr/share/games/rrootage/sounds/stg_*.ogg"),
    Entry("titanion-data", "Electronic", "usr/share/games/titanion/sounds/musics/*.ogg"),
    Entry("torus-trooper-data", "Electronic", "usr/share/games/torus-trooper/sounds/musics/*.ogg"),
    Entry("tumiki-fighters-data", "Electronic", "usr/share/games/tumiki-fighters/sounds/*.ogg"),
    # Askyel's "Naev Soundtrack": the files carry GENRE=Electronic.
    Entry("naev-data", "Electronic", NAEV + "terminal.ogg"),
    Entry("naev-data", "Electronic", NAEV + "eureka.ogg"),
    # DJ Helium's "White Valley" (GENRE=Electronic) and "Zen Garden"; Speedsound's psytrance
    # "Sky Vibe - High Frequency" (GENRE=Psychedelic, from Jamendo).
    Entry("supertuxkart-data", "Electronic", STK + "valley.ogg"),
    Entry("supertuxkart-data", "Electronic", STK + "garden.ogg"),
    Entry("supertuxkart-data", "Electronic", STK + "SkyVibe-HighFrequency.ogg"),
    # "Mortimer's Chipdisko" (Mortimer Twang): chiptune disco.
    Entry("supertux-data", "Electronic", "usr/share/games/supertux2/music/antarctic/chipdisko.ogg"),
    # Mysid's "Chiptune2".
    Entry("tuxtype-data", "Electronic", "usr/share/tuxtype/sounds/chiptune2.ogg"),
    # Arvid Picciani's "temple" (GENRE=dnb: drum and bass); stud's "Bleostrada", from the electronic
    # netlabel kahvi.org.
    Entry("freedroidrpg-data", "Electronic", "usr/share/freedroidrpg/data/sound/music/temple.ogg"),
    Entry("freedroidrpg-data", "Electronic", "usr/share/freedroidrpg/data/sound/music/Bleostrada.ogg"),
    # K-Pone's "Crushed Ice Cocktail": GENRE=House.
    Entry("openclonk-data", "Electronic", CLONK + "@CrushedIceCocktail.ogg"),
    # ---- Rock (few tracks: three excerpts each) ----------------------------------------------
    # OpenArena 0.8.8's in-game music, OA01-OA14, all by Jute Gyte (a metal artist).
    Entry(
        "openarena-088-data",
        "Rock",
        "music/OA*.ogg",
        excerpts=3,
        archive="usr/share/games/openarena/baseoa/pak6-patch088.pk3",
    ),
    # MiddleFinger's Widelands_01-03: GENRE=Thrash Metal.
    Entry("widelands-data", "Rock", WIDELANDS + "ingame_1[567].ogg", excerpts=3),
    # K-Pone's "Motorway" and "The Skylands": GENRE=Rock.
    Entry("openclonk-data", "Rock", CLONK + "Motorway.ogg", excerpts=3),
    Entry("openclonk-data", "Rock", CLONK + "TheSkylands.ogg", excerpts=3),
    # Karel Schmiedberger's "08-rock-n-roll", GCompris's sample of "rock n' roll music".
    Entry("gcompris-qt-data", "Rock", GCOMPRIS[1] + "america.ogg", archive=GCOMPRIS[0], excerpts=3),
    # HSR's "Rock", the music of Hedgewars' "Stage" (concert stage) theme.
    Entry("hedgewars-data", "Rock", HEDGEWARS + "Music/Rock.ogg", excerpts=3),
    # ---- Classical (orchestral; few tracks: two excerpts each) -------------------------------
    # GCompris "European Classical Music": Beethoven's 9th symphony, 2nd movement; and Enrico
    # Caruso singing Handel's "Ombra mai fu" (opera).
    Entry("gcompris-qt-data", "Classical", GCOMPRIS[1] + "beethoven.ogg", archive=GCOMPRIS[0], excerpts=2),
    Entry("gcompris-qt-data", "Classical", GCOMPRIS[1] + "italy.ogg", archive=GCOMPRIS[0], excerpts=2),
    # Flare's fantasy RPG score, composed by Brandon Morris and remaxim for orchestra (not its wind loop).
    Entry("flare-game", "Classical", "usr/share/games/flare/mods/fantasycore/music/*_theme.ogg", excerpts=2),
    # "romans": GENRE=Classical (from Mattias Westlund's orchestral album "Chronicles III").
    Entry(
        "megaglest-data",
        "Classical",
        "usr/share/games/megaglest/techs/megapack/factions/romans/music/*.ogg",
        excerpts=2,
    ),
    # Azzoug Lawrence's "Divertissement pour flute": GENRE=Classique.
    Entry(
        "warmux-data",
        "Classical",
        "usr/share/games/warmux/music/menu/Divertissement_pour_flute.ogg",
        excerpts=2,
    ),
    # Nikola Whallon's "orchestralsample".
    Entry("widelands-data", "Classical", WIDELANDS + "ingame_18.ogg", excerpts=2),
    # K-Pone's "Urban Bolero": GENRE=Orchestral.
    Entry("openclonk-data", "Classical", CLONK + "UrbanBolero.ogg", excerpts=2),
    # Matthew Pablo's orchestral "Blackmoor Tides" and "Imminent Threat"; Dizzy Crow's "pirates_orchestra".
    Entry("naev-data", "Classical", NAEV + "blackmoor_tides.ogg", excerpts=2),
    Entry("naev-data", "Classical", NAEV + "imminent_threat.ogg", excerpts=2),
    Entry("naev-data", "Classical", NAEV + "pirates_orchestra.ogg", excerpts=2),
    # Bart Kelsey's "Airship Song Orchestral Mix".
    Entry(
        "supertux-data",
        "Classical",
        "usr/share/games/supertux2/music/antarctic/airship_remix.ogg",
        excerpts=2,
    ),
    # Cullam Bruce-Lockhart's orchestral "Dawning Fanfare".
    Entry("freeciv-data", "Classical", "usr/share/games/freeciv/stdmusic/*.ogg", excerpts=2),
    # Wagner's "Ride of the Valkyries" (19 s, a Hedgewars sound).
    Entry("hedgewars-data", "Classical", HEDGEWARS + "Sounds/ride_of_the_valkyries.ogg"),
    # ---- Folk ---------------------------------------------------------------------------------
    # "The Wind that Shakes the Barley" on the fiddle: GCompris's "celtic music" sample.
    Entry("gcompris-qt-data", "Folk", GCOMPRIS[1] + "ireland.ogg", archive=GCOMPRIS[0]),
    # Hasi50's "The beauty of the flat lands": GENRE=folk.
    Entry("widelands-data", "Folk", WIDELANDS + "ingame_28.ogg", excerpts=2),
    # Max Freeman & Chris Leutwyler's "celtic" kart track (a celtic tune).
    Entry("supertuxkart-data", "Folk", STK + "celtic.ogg", excerpts=2),
    # ---- International ------------------------------------------------------------------------
    # GCompris "Explore world music": djembe (Africa), didgeridoo (Australia), taiko (Japan),
    # mariachi (Mexico's anthem by Mariachi Mexico de Pepe Villa), Safiye Ayla's Turkish song.
    Entry(
        "gcompris-qt-data",
        "International",
        GCOMPRIS[1] + "[ajm]*.ogg",
        archive=GCOMPRIS[0],
        exclude="*/america.ogg",
    ),
    # K-Pone's "Island Dreams": GENRE=Reggae (FMA files Reggae under International).
    Entry("openclonk-data", "International", CLONK + "IslandDreams.ogg", excerpts=2),
    # ---- Blues --------------------------------------------------------------------------------
    # tgfcoder's "Frozen Jam": GENRE=Blues; Robert van Herk's "City Blues".
    Entry("starfighter-data", "Blues", "usr/share/starfighter/music/frozen_jam.ogg", excerpts=2),
    Entry(
        "lincity-ng-data", "Blues", "usr/share/games/lincity-ng/music/default/02*City Blues.ogg", excerpts=2
    ),
    # ---- Instrumental (ambient: FMA files Ambient under Instrumental) -------------------------
    # 4T Thieves' "The Beginning" (kahvi.org): GENRE=ambient.
    Entry(
        "freedroidrpg-data",
        "Instrumental",
        "usr/share/freedroidrpg/data/sound/music/TheBeginning.ogg",
        excerpts=2,
    ),
    # K-Pone's "Lucid Dream": GENRE=Ambient.
    Entry("openclonk-data", "Instrumental", CLONK + "LucidDream.ogg", excerpts=2),
    # "Void Sensor" and "Ambiphonic" from the Jamendo album "Ambient Pills"; "Ambient 2.5".
    Entry("naev-data", "Instrumental", NAEV + "void_sensor.ogg"),
    Entry("naev-data", "Instrumental", NAEV + "ambiphonic.ogg"),
    Entry("naev-data", "Instrumental", NAEV + "ambient2_5.ogg"),
    # Azzoug Lawrence's "Musique ambiance No.1": GENRE=Ambiance.
    Entry("warmux-data", "Instrumental", "usr/share/games/warmux/music/ingame/construction.ogg", excerpts=2),
    # ---- Spoken (speech, no music) ------------------------------------------------------------
    # Asterisk telephone voice prompts, read by one speaker each: Italian, French, Colombian Spanish.
    Entry(
        "asterisk-prompt-it-menardi-wav",
        "Spoken",
        ASTERISK + "it_IT_f_Menardi/**/*.wav",
        speech=True,
        limit=10,
        exclude="*/silence/*",
    ),
    Entry("asterisk-prompt-fr-armelle", "Spoken", ASTERISK + "fr/**/*.gsm", speech=True, limit=10),
    Entry("asterisk-prompt-es-co", "Spoken", ASTERISK + "es/**/*.gsm", speech=True, limit=10),
    # Fish Fillets' dialogue, voiced by Czech and by Dutch actors.
    Entry(
        "fillets-ng-data-cs", "Spoken", "usr/share/games/fillets-ng/sound/*/cs/*.ogg", speech=True, limit=10
    ),
    Entry(
        "fillets-ng-data-nl", "Spoken", "usr/share/games/fillets-ng/sound/*/nl/*.ogg", speech=True, limit=10
    ),
    # KLettres: letters and syllables read aloud in some 25 languages.
    Entry("klettres-data", "Spoken", "usr/share/klettres/*/*/*.ogg", speech=True, limit=8),
    # KTuberling: the names of its stamps spoken in 15 languages.
    Entry("ktuberling-data", "Spoken", "usr/share/ktuberling/sounds/*/*.ogg", speech=True, limit=8),
    # pocketsphinx's test recordings: LibriVox's "Sense and Sensibility" and read card numbers.
    Entry("pocketsphinx-testdata", "Spoken", "usr/share/pocketsphinx/test/data/*/*.wav", speech=True),
    # Synthetic speech, stand-ins (SYNTHETIC below): espeak-ng in eight languages, flite in four voices.
    Entry("espeak-ng", "Spoken", "synth/*.wav"),
    Entry("flite", "Spoken", "synth/*.wav"),
)

# Package -> split (packages not named here train). Chosen so that every genre with three or more
# packages has one in validation and in test, and the test split holds most genres.
SPLITS_BY_PACKAGE: dict[str, str] = {
    # test: Rock, Classical, International, Instrumental | Electronic, Folk | Electronic | Classical | Spoken
    "openclonk-data": "test",
    "supertuxkart-data": "test",
    "torus-trooper-data": "test",
    "tumiki-fighters-data": "test",
    "flare-game": "test",
    "asterisk-prompt-fr-armelle": "test",
    "fillets-ng-data-nl": "test",
    "flite": "test",
    # validation: Rock, Classical, Folk | Classical, Instrumental | Classical | Electronic | Spoken
    "widelands-data": "validation",
    "warmux-data": "validation",
    "megaglest-data": "validation",
    "noiz2sa-data": "validation",
    "parsec47-data": "validation",
    "asterisk-prompt-es-co": "validation",
    "fillets-ng-data-cs": "validation",
}

# Synthetic speech: the engine's packages (with the libraries it needs beyond a minimal system).
SYNTH_PACKAGES: dict[str, tuple[str, ...]] = {
    "espeak-ng": (
        "espeak-ng",
        "libespeak-ng1",
        "espeak-ng-data",
        "libpcaudio0",
        "libsonic0",
        "libpulse0",
        "libasyncns0",
        "libsndfile1",
        "libflac12",
        "libmp3lame0",
        "libmpg123-0",
        "libogg0",
        "libopus0",
        "libvorbis0a",
        "libvorbisenc2",
        "libasound2",
    ),
    "flite": ("flite", "libflite1", "libasound2"),
}
SYNTH_TEXTS: dict[str, tuple[tuple[str, str], ...]] = {  # engine -> (voice, paragraph)
    "espeak-ng": (
        (
            "en-us",
            "The river behind the old mill used to flood every spring. My grandmother kept a list of the "
            "dates, written in pencil inside the cover of a cookbook, and she could tell you which years the "
            "water reached the bakery and which years it only wet the road. Nobody asked her to do it. She "
            "said that a town which forgets its floods will build in the wrong places, and she was right.",
        ),
        (
            "fr+f3",
            "Chaque matin, le marché s'installe sur la place avant le lever du soleil. Les marchands de "
            "légumes arrivent les premiers, puis le fromager, puis la femme qui vend des fleurs et qui connaît "
            "le prénom de tous les enfants du quartier. Vers neuf heures, on ne peut plus avancer entre les "
            "étals, et l'odeur du pain chaud se mêle à celle des oranges.",
        ),
        (
            "de",
            "Der Zug nach Hamburg hatte wieder einmal Verspätung, und so saßen wir zwei Stunden im "
            "Bahnhofscafé. Ein älterer Herr am Nebentisch erzählte uns, dass er diese Strecke seit vierzig "
            "Jahren fährt, zuerst als Student, dann als Lehrer und jetzt nur noch, um seine Enkel zu besuchen. "
            "Früher, sagte er, habe man im Zug gelesen oder aus dem Fenster geschaut.",
        ),
        (
            "es+m3",
            "En el pueblo de mi abuelo, las tardes de verano eran largas y tranquilas. Los hombres se "
            "sentaban a la sombra de la iglesia para hablar del tiempo y de la cosecha, mientras los niños "
            "corrían detrás de un balón viejo por la plaza. Cuando por fin bajaba el sol, las familias sacaban "
            "sillas a la calle y cenaban juntas, y nadie tenía prisa por volver a casa.",
        ),
        (
            "it+f2",
            "Per preparare un buon sugo di pomodoro non servono molti ingredienti, ma serve pazienza. Si "
            "comincia con un filo d'olio e uno spicchio d'aglio, che deve appena dorarsi, senza bruciare. Poi "
            "si aggiungono i pomodori, un pizzico di sale e qualche foglia di basilico. Il resto lo fa il "
            "tempo: almeno mezz'ora a fuoco basso, mescolando di tanto in tanto.",
        ),
        (
            "pt",
            "O farol da ilha foi construído há mais de cem anos, quando os navios ainda chegavam carregados de "
            "café e de madeira. Durante muito tempo, uma só família cuidou da luz, passando a chave de pai para "
            "filho. Hoje o farol funciona sozinho, com energia solar, mas os pescadores mais velhos ainda "
            "cumprimentam a torre quando saem para o mar.",
        ),
        (
            "nl+m2",
            "Op zaterdag fietsen we meestal langs de dijk naar het volgende dorp, waar een kleine bakkerij de "
            "beste appeltaart van de streek verkoopt. Als het hard waait, duurt de tocht twee keer zo lang, en "
            "dan zeggen de kinderen dat ze nooit meer meegaan. Maar zodra ze de taart zien, zijn ze alles "
            "vergeten. Op de terugweg hebben we de wind in de rug.",
        ),
        (
            "pl",
            "Zimą nasze miasteczko wygląda zupełnie inaczej niż latem. Rano na ulicach jest cicho, słychać "
            "tylko skrzypienie śniegu pod butami i dzwonek tramwaju, który jedzie powoli przez most. Dzieci idą "
            "do szkoły z sankami, a starsi ludzie zatrzymują się przy piekarni, żeby porozmawiać o pogodzie.",
        ),
    ),
    "flite": (
        (
            "slt",
            "Before you start the engine, walk once around the car. Look at the tyres, check that the lights "
            "work and that nothing is leaking underneath. It takes less than a minute, and it is the cheapest "
            "repair you will ever make. Most breakdowns on long journeys begin with something small that was "
            "visible in the car park, if anyone had bothered to look.",
        ),
        (
            "kal16",
            "The library opens at nine on weekdays and at ten on Saturdays. Books may be borrowed for three "
            "weeks and renewed twice, unless another reader has reserved them. Newspapers and magazines stay "
            "in the reading room. If you have lost your card, please bring a document with your address to "
            "the front desk, and a new card will be printed while you wait.",
        ),
        (
            "awb",
            "Bees do not sleep the way we do, but they rest. At night a worker bee grows still, her antennae "
            "droop, and she may hold on to a neighbour with her legs. Scientists have found that bees kept "
            "awake forget what they learned the day before, and that their dances, which tell the hive where "
            "the flowers are, become less precise.",
        ),
        (
            "rms",
            "Ladies and gentlemen, welcome aboard. In a few minutes we will leave the harbour and head for the "
            "islands. The crossing takes about two hours, and the sea today is calm. Life jackets are stored "
            "under your seats. The cafe on the upper deck serves hot drinks and sandwiches, and from the rear "
            "deck you may see dolphins.",
        ),
    ),
}


class DownloadError(Exception):
    """apt-get could not fetch a package (unknown here, no network, ...)."""


def check_table(table: tuple[Entry, ...] | None = None, splits: dict[str, str] | None = None) -> None:
    """Refuse the reserved packages, unknown genres or splits, and a split that leaves a genre
    with three or more packages without one in each of training, validation and test."""
    table, splits = table or TABLE, splits or SPLITS_BY_PACKAGE
    reserved = sorted({e.package for e in table if e.package.startswith(RESERVED)})
    if reserved:
        raise AssertionError(f"reserved for an independent check, keep out of the corpus: {reserved}")
    unknown = sorted({e.genre for e in table} - set(GENRES)) + sorted(set(splits.values()) - set(SPLITS))
    if unknown:
        raise AssertionError(f"unknown genre(s) or split(s) in the table: {unknown}")
    for genre in sorted({e.genre for e in table}):
        packages = {e.package for e in table if e.genre == genre}
        held = {splits.get(p, "training") for p in packages}
        if len(packages) >= 3 and held != set(SPLITS):
            raise AssertionError(
                f"{genre}: {len(packages)} packages but none in {sorted(set(SPLITS) - held)}: "
                "assign one in SPLITS_BY_PACKAGE"
            )


# ---- unpacking ------------------------------------------------------------------------------------


def download(packages: tuple[str, ...], folder: Path) -> list[Path]:
    """The .deb of each package in `folder`, fetched with `apt-get download` unless already there."""

    def deb(name: str) -> Path | None:
        return next(iter(sorted(folder.glob(f"{name}_*.deb"))), None)

    missing = [p for p in packages if deb(p) is None]
    if missing:
        result = subprocess.run(["apt-get", "download", *missing], cwd=folder, capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("E:")] or [
                "apt-get failed"
            ]
            raise DownloadError(errors[-1])
    return [deb(p) for p in packages]


def unpack(debs: list[Path], root: Path) -> None:
    for path in debs:
        subprocess.run(["dpkg", "-x", str(path), str(root)], check=True, capture_output=True)


def rcc_members(blob: bytes) -> Iterator[tuple[str, bytes | None]]:
    """(path, bytes) of each file in a Qt resource (.rcc) file; None for zstd-compressed data."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    node = 22 if version >= 2 else 14

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes | None]]:
        base = tree + index * node
        name_offset, flags = struct.unpack(">IH", blob[base : base + 6])
        here = prefix + name(name_offset) if index else ""
        if flags & 2:  # a directory
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, here + "/" if index else "")
            return
        (offset,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        raw = blob[data + offset + 4 : data + offset + 4 + size]
        yield here, zlib.decompress(raw[4:]) if flags & 1 else None if flags & 4 else raw

    yield from walk(0, "")


def from_archive(archive: Path, pattern: str, exclude: str | None, folder: Path) -> list[Path]:
    """Write the members of a zip (.pk3) or Qt .rcc archive that match `pattern` under `folder`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [(n, zf.read(n)) for n in zf.namelist() if fnmatch.fnmatch(n, pattern)]
    else:
        members = [(n, raw) for n, raw in rcc_members(archive.read_bytes()) if fnmatch.fnmatch(n, pattern)]
    paths = []
    for name, raw in members:
        if raw is None or (exclude and fnmatch.fnmatch(name, exclude)):
            continue
        path = folder / archive.name / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        paths.append(path)
    return sorted(paths)


def synthesize(engine: str, root: Path) -> None:
    """Speak SYNTH_TEXTS with the engine unpacked in `root`, one WAV per paragraph in root/synth/."""
    libraries = sorted({str(p.parent) for p in root.rglob("*.so*")})
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(libraries)}
    (root / "synth").mkdir(exist_ok=True)
    for i, (voice, text) in enumerate(SYNTH_TEXTS[engine]):
        wav = root / "synth" / f"{engine}-{i:02d}-{voice.replace('+', '-')}.wav"
        if engine == "espeak-ng":
            data = next(root.rglob("espeak-ng-data/phontab")).parent.parent
            command = [
                str(root / "usr/bin/espeak-ng"),
                f"--path={data}",
                "-v",
                voice,
                "-s",
                "160",
                "-w",
                str(wav),
                text,
            ]
        else:
            command = [str(root / "usr/bin/flite"), "-voice", voice, "-t", text, "-o", str(wav)]
        subprocess.run(command, env=env, check=True, capture_output=True)


# ---- clips ----------------------------------------------------------------------------------------


def matches(entry: Entry, root: Path, scratch: Path) -> list[Path]:
    if entry.archive:
        return from_archive(root / entry.archive, entry.files, entry.exclude, scratch)
    return sorted(
        p
        for p in root.glob(entry.files)
        if p.is_file()
        and p.suffix.lower() in AUDIO
        and not (entry.exclude and fnmatch.fnmatch(str(p), entry.exclude))
    )


def excerpts(audio: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` 30-s excerpts, each from the middle of one of `count` equal parts of the track (fewer
    if it is too short for them); the whole track if it is 30 s or shorter."""
    n = int(CLIP_SECONDS * RATE)
    count = max(1, min(count, len(audio) // n))
    part = len(audio) / count
    return [audio[int(part * i + max(0.0, (part - n) / 2)) :][:n] for i in range(count)]


def joined(paths: list[Path], limit: int | None) -> Iterator[tuple[np.ndarray, list[Path]]]:
    """Short speech files joined in order, with pauses, into clips of ~25 s (at most 30 s): `limit`
    clips, each from its own stretch of the sorted files, or as many as the files make."""
    pause = np.zeros(int(PAUSE_SECONDS * RATE), np.float32)
    stretches = np.array_split(np.arange(len(paths)), limit) if limit else [np.arange(len(paths))]
    for stretch in stretches:
        parts, used = [], []
        for i in stretch:
            try:
                parts += [decode(paths[i], RATE).audio, pause]
            except DecodeError:
                continue
            used.append(paths[i])
            if sum(map(len, parts)) >= SPEECH_SECONDS * RATE:
                yield np.concatenate(parts)[: int(CLIP_SECONDS * RATE)], used
                if limit:
                    break
                parts, used = [], []
        else:
            if parts and sum(map(len, parts)) >= MIN_SECONDS * RATE:
                yield np.concatenate(parts), used


def title_of(path: Path) -> str:
    """'artist - title' from the file's tags when it has them, else its name."""
    import av

    try:
        with av.open(str(path)) as container:
            tags = {k.lower(): v.strip() for k, v in container.metadata.items()}
            tags.update({k.lower(): v.strip() for k, v in container.streams.audio[0].metadata.items()})
    except (av.FFmpegError, IndexError, UnicodeDecodeError):  # Kenta Cho's oggs carry Shift-JIS tags
        tags = {}
    title = tags.get("title", "")
    artist = tags.get("artist", "")
    return f"{artist} - {title}" if artist and title else title or path.name


def package_clips(package: str, entries: list[Entry], out: Path, debs: Path, keep_debs: bool) -> list[dict]:
    """Download and unpack one package, write its clips under out/clips/<package>/, return their rows."""
    folder = out / "clips" / package
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="real-corpus-") as tmp:
        root = Path(tmp) / "root"
        files = download(SYNTH_PACKAGES.get(package, (package,)), debs)
        unpack(files, root)
        if not keep_debs:  # a few hundred MB each for the largest: free the disk as we go
            for path in files:
                path.unlink()
        if package in SYNTH_PACKAGES:
            synthesize(package, root)

        def write(audio: np.ndarray, stem: str, genre: str, title: str) -> None:
            if len(audio) < MIN_SECONDS * RATE or unusable_reason(Decoded(audio, RATE, "")):
                return  # too short or silent: it would tell nothing
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)
            while (folder / f"{name}.mp3").exists():
                name += "_"
            sf.write(folder / f"{name}.mp3", audio, RATE, format="MP3")
            rows.append(
                {"path": f"clips/{package}/{name}.mp3", "genre": genre, "source": package, "title": title}
            )

        for number, entry in enumerate(entries):
            paths = matches(entry, root, Path(tmp) / "archives")
            if not paths:
                tqdm.write(f"  {package}: no audio file matches {entry.files}")
            if entry.speech:
                base = Path(os.path.commonpath(paths)) if len(paths) > 1 else root
                for k, (audio, used) in enumerate(joined(paths, entry.limit)):
                    first, last = (p.relative_to(base).with_suffix("") for p in (used[0], used[-1]))
                    write(
                        audio,
                        f"speech{number}-{k:02d}",
                        entry.genre,
                        f"{len(used)} files joined: {first} .. {last}",
                    )
                continue
            for path in paths[: entry.limit]:
                try:
                    audio = decode(path, RATE).audio
                except DecodeError as error:
                    tqdm.write(f"  {package}: skipped {path.name}: {error.reason}")
                    continue
                parts = excerpts(audio, entry.excerpts)
                for k, part in enumerate(parts):
                    suffix = f"-{k + 1}of{len(parts)}" if len(parts) > 1 else ""
                    write(
                        part,
                        path.stem + suffix,
                        entry.genre,
                        title_of(path) + (f" ({k + 1}/{len(parts)})" if suffix else ""),
                    )
    return rows


# ---- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="real_corpus.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "real-corpus", help="corpus folder (default real-corpus/)"
    )
    parser.add_argument(
        "--debs", type=Path, help="keep the downloaded .debs here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    check_table()
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: this tool needs a Debian or Ubuntu system")

    out, done = args.out, args.out / ".done"
    done.mkdir(parents=True, exist_ok=True)
    by_package: dict[str, list[Entry]] = {}
    for entry in TABLE:
        by_package.setdefault(entry.package, []).append(entry)
    rows, failed = [], {}
    with tempfile.TemporaryDirectory(prefix="real-corpus-debs-") as tmp:
        debs = args.debs or Path(tmp)
        debs.mkdir(parents=True, exist_ok=True)
        for package, entries in tqdm(by_package.items(), desc="packages", unit="pkg"):
            marker = done / f"{package}.json"
            spec = [asdict(e) for e in entries] + [SYNTH_TEXTS.get(package)]
            if marker.is_file():
                saved = json.loads(marker.read_text())
                if saved["spec"] == json.loads(json.dumps(spec)) and all(
                    (out / r["path"]).is_file() for r in saved["rows"]
                ):
                    rows += saved["rows"]
                    continue
            try:
                made = package_clips(package, entries, out, debs, keep_debs=args.debs is not None)
            except (DownloadError, subprocess.CalledProcessError, OSError, ValueError) as error:
                failed[package] = str(error).strip() or type(error).__name__
                tqdm.write(f"{package}: skipped ({failed[package]})")
                continue
            marker.write_text(json.dumps({"spec": spec, "rows": made}, indent=1) + "\n")
            rows += made

    if not rows:
        print("real_corpus.py: error: no clips made", file=sys.stderr)
        return 1
    labels = pd.DataFrame(rows)
    labels.insert(2, "split", labels["source"].map(lambda p: SPLITS_BY_PACKAGE.get(p, "training")))
    labels = labels.sort_values("path").reset_index(drop=True)
    labels[["path", "genre", "split", "source", "title"]].to_csv(out / "labels.csv", index=False)

    print("\nclips per genre and split:")
    print(
        pd.crosstab(labels["genre"], labels["split"], margins=True, margins_name="all")
        .reindex(columns=[*SPLITS, "all"], fill_value=0)
        .to_string()
    )
    print("\nclips per source (genres; split):")
    for source, group in labels.groupby("source"):
        genres = ", ".join(f"{g} {n}" for g, n in group["genre"].value_counts().items())
        print(f"  {source:32s} {len(group):3d}  {genres}; {group['split'].iloc[0]}")
    megabytes = sum((out / p).stat().st_size for p in labels["path"]) / 1e6
    print(
        f"\n{out / 'labels.csv'}: {len(labels)} clips from {labels['source'].nunique()} packages, "
        f"{labels['genre'].nunique()} genres, {megabytes:.0f} MB"
        + (f"; {len(failed)} package(s) failed: {', '.join(failed)}" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
