"""What tools/real_corpus.py builds its corpus from: the Debian packages, the files in each, the
genre a listener would name and why (each entry's comment), the split of every package, the
packages kept out for an independent check, and the texts synthetic speech reads.
"""

from __future__ import annotations

from dataclasses import dataclass

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
