"""Zero-shot genres: musicnn's MSD and MTT tags -> the 16 FMA genres, not fitted on FMA.

A Bayes update of the FMA-medium prior by three kinds of evidence, on every 3-s chunk:

    evidence(genre) = ratio(genre) x P(speech cue | genre) x ratio(kind of audio | genre)

**Tags.** Each genre is read off hallmark tags the taggers already know (table below). A tag
probability P is a posterior under the tagger's own training data (MSD is rock-heavy, MTT
classical-heavy); against the tag's base rate there -- counted in the taggers' own label files
(weights/musicnn/tag_base_rates.json, FACTS section 8) -- its Bayes factor BF = odds(P) /
odds(base) is the likelihood ratio of "tag on" against "tag off", so that genres, which exclude
one another, compare as their hallmarks' factors do:

    tagged(genre) = max over any_of t of BF(t) / max over none_of t of BF(t)
    ratio(genre) = (1 - coverage) + coverage x tagged(genre)

"Max" because one hallmark suffices: a punk track need not also sound like metal to be rock.
Coverage is the share of the genre its tags describe (0.9 where a tag names it; 0.2 for
International and Old-Time / Historic, whose tags name a sliver of them: they stay near their
prior).

**Speech cue.** The taggers never heard speech without music; model/speech.py measures two
things they miss, syllables (the voice band's level dips and swings several times a second) and
pauses, with likelihoods P(cell | Spoken) and P(cell | music) counted on the real-music corpus'
decided-on part (`SPEECH_CUES`).

**Kind of audio** (model/audio_kinds.py): a detector on the taggers' embeddings tells speech,
orchestral music and other music apart, which the tags cannot (they hear game orchestras as
ambient and electronic); P(kind | genre) are stated beliefs.

The ensemble averages the log evidence over the clip's chunks and adds the log of the
FMA-medium class prior (manifest kind `zero_shot`), so its confidence is what the evidence
supports, no temperature. No weight, threshold or temperature was fitted to FMA; the detector
was fitted on the corpus' decided-on packages, never on the packages it is tested on.

The three are not independent witnesses: the cue and the detector read the same two speech
measures, and the detector the embedding the tags come from (on the corpus' chunks their
Spoken-against-Rock log evidence correlates at 0.93 and 0.87), so where all agree the product
overstates the evidence -- on the corpus' music chunks, Spoken's evidence against Rock reaches
1,350 to 1 on one (99 % of them below 2.4); on its 153 music clips P(Spoken) stays below 0.02.

The manifest holds the rule (the member's hparams: `genre_tags`, `tag_base_rates`,
`speech_cue`, `audio_kinds`, `kind_given_genre`). `tools/zero_shot_ensemble.py --rule counted`
writes it without the detector; `--rule estimated` writes the rule shipped before (base rates
estimated as the output layer at the mean embedding, which underestimates common tags up to a
hundredfold; ratio P / base; the table without coverage; the pause cue with stated likelihoods
`CUE_GIVEN_SPEECH` / `CUE_GIVEN_MUSIC`). docs/zero-shot.md measures all three.

| genre | evidence from | why |
|---|---|---|
| Blues | msd:blues | the tag itself |
| Classical | mtt:classical, mtt:classic, mtt:opera, mtt:harpsichord, mtt:strings, mtt:violin, mtt:cello, mtt:harp, mtt:choir, mtt:choral; the "orchestral" kind | MTT's classical tags; its orchestral instruments and choirs come from Magnatune's classical catalogue |
| Country | msd:country, mtt:country | the tag in both vocabularies |
| Easy Listening | msd:easy listening | the tag itself (FMA's lounge / easy-listening) |
| Electronic | msd:electronic, msd:electronica, msd:electro, msd:House, mtt:electronic, mtt:techno | electronic styles named by either tagger |
| Experimental | msd:experimental, mtt:weird | the tag itself; MTT has only "weird" for the avant-garde |
| Folk | msd:folk | the tag itself |
| Hip-Hop | msd:Hip-Hop | the tag itself |
| Instrumental | msd:instrumental, msd:ambient, mtt:ambient, mtt:new age; partly the "orchestral" kind | FMA files ambient and soundtrack-like music under Instrumental |
| International | mtt:indian, mtt:sitar | the only non-Western styles either tagger knows; FMA's International is wider (Latin, African, ...) |
| Jazz | msd:jazz | the tag itself |
| Old-Time / Historic | msd:oldies | early recordings; Last.fm's "oldies" is the nearest notion |
| Pop | msd:pop, msd:indie pop, mtt:pop | the tag in both vocabularies |
| Rock | msd:rock, msd:alternative rock, msd:indie rock, msd:classic rock, msd:hard rock, msd:punk, msd:metal, msd:heavy metal, msd:Progressive rock, mtt:rock, mtt:metal | FMA's Rock holds punk, metal and progressive |
| Soul-RnB | msd:soul, msd:rnb, msd:funk | FMA's Soul-RnB holds funk |
| Spoken | mtt:voice, mtt:male voice, mtt:man (mtt:female voice, mtt:woman in the counted rule), none of mtt:beat, mtt:drums, mtt:guitar, mtt:piano, mtt:synth, mtt:strings; the speech cue; the "speech" kind | no speech tag exists: a voice with no instruments, syllables and pauses |
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from .audio_kinds import AudioKinds
from .genres import GENRES
from .musicnn import PAIR_TAGS, MusicnnPair, check_input

SPEECH_PAUSES = 0.10  # a chunk with this fraction of pause frames (or more) is fully speech-like
CUE_GIVEN_SPEECH = 0.9  # P(speech cue | Spoken): most speech chunks hold pauses
CUE_GIVEN_MUSIC = 0.01  # P(speech cue | a music genre): music rarely does

# The speech cues a manifest can name. "pauses": the rule before's, its likelihoods stated beliefs.
# "syllables and pauses": P(cell | Spoken) and P(cell | music) for the four cells [syllabic score
# >= 0.5][pause fraction >= 0.10] of model/speech.py's measures, counted (add-one) over the 3-s
# chunks of the corpus' decided-on part: speech 22, 42, 181, 315 of 560 (real prompts, dialogue and
# read speech, and bench/speech_cue.py's generated cases); music 584, 51, 28, 5 of 668 (the corpus'
# music, faded-in and quiet copies, generated piano and guitar with rests).
SPEECH_CUES: dict[str, dict] = {
    "pauses": {"given_speech": CUE_GIVEN_SPEECH, "given_music": CUE_GIVEN_MUSIC},
    "syllables and pauses": {
        "given_speech": [[0.041, 0.076], [0.323, 0.560]],
        "given_music": [[0.871, 0.077], [0.043, 0.009]],
    },
}

# The counted rule's changes to the table: the share of each genre its tags describe (module
# docstring), and a woman's voice for Spoken besides a man's.
COUNTED_COVERAGE = {"International": 0.2, "Old-Time / Historic": 0.2}  # every other genre: 0.9
COUNTED_EXTRA_TAGS = {"Spoken": ("mtt:female voice", "mtt:woman")}

# genre -> (any_of, none_of); the table in the module docstring, in code.
GENRE_TAGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Blues": (("msd:blues",), ()),
    "Classical": (
        (
            "mtt:classical",
            "mtt:classic",
            "mtt:opera",
            "mtt:harpsichord",
            "mtt:strings",
            "mtt:violin",
            "mtt:cello",
            "mtt:harp",
            "mtt:choir",
            "mtt:choral",
        ),
        (),
    ),
    "Country": (("msd:country", "mtt:country"), ()),
    "Easy Listening": (("msd:easy listening",), ()),
    "Electronic": (
        ("msd:electronic", "msd:electronica", "msd:electro", "msd:House", "mtt:electronic", "mtt:techno"),
        (),
    ),
    "Experimental": (("msd:experimental", "mtt:weird"), ()),
    "Folk": (("msd:folk",), ()),
    "Hip-Hop": (("msd:Hip-Hop",), ()),
    "Instrumental": (("msd:instrumental", "msd:ambient", "mtt:ambient", "mtt:new age"), ()),
    "International": (("mtt:indian", "mtt:sitar"), ()),
    "Jazz": (("msd:jazz",), ()),
    "Old-Time / Historic": (("msd:oldies",), ()),
    "Pop": (("msd:pop", "msd:indie pop", "mtt:pop"), ()),
    "Rock": (
        (
            "msd:rock",
            "msd:alternative rock",
            "msd:indie rock",
            "msd:classic rock",
            "msd:hard rock",
            "msd:punk",
            "msd:metal",
            "msd:heavy metal",
            "msd:Progressive rock",
            "mtt:rock",
            "mtt:metal",
        ),
        (),
    ),
    "Soul-RnB": (("msd:soul", "msd:rnb", "msd:funk"), ()),
    "Spoken": (
        ("mtt:voice", "mtt:male voice", "mtt:man"),
        ("mtt:beat", "mtt:drums", "mtt:guitar", "mtt:piano", "mtt:synth", "mtt:strings"),
    ),
}


def genre_tags_json(counted: bool = False) -> dict[str, dict]:
    """`GENRE_TAGS` as the manifest stores it (the member's hparams), so it can be read and edited
    there; `counted`: with the counted rule's coverage and extra tags."""
    table = {}
    for genre, (any_of, none_of) in GENRE_TAGS.items():
        table[genre] = {"any_of": list(any_of), "none_of": list(none_of)}
        if counted:
            table[genre]["any_of"] += COUNTED_EXTRA_TAGS.get(genre, ())
            table[genre]["coverage"] = COUNTED_COVERAGE.get(genre, 0.9)
    return table


def read_tag_base_rates(path: str | Path) -> dict[str, float]:
    """weights/musicnn/tag_base_rates.json -> {"msd:<tag>" / "mtt:<tag>": base rate}, all 100 tags."""
    counted = json.loads(Path(path).read_text())
    rates = {
        f"{tagger}:{tag}": float(rate) for tagger in ("msd", "mtt") for tag, rate in counted[tagger].items()
    }
    if sorted(rates) != sorted(PAIR_TAGS):
        raise ValueError(f"{path}: needs a base rate for each of the {len(PAIR_TAGS)} tags, in 'msd'/'mtt'")
    return rates


class MusicnnZeroShot(MusicnnPair):
    """(batch, 96 mels, frames) -> (batch, 16) log genre evidence; see the module docstring.

    A tagger pair with a fixed head, so its state dict is the pair's (weights/musicnn/musicnn_pair.pt).
    With `tag_base_rates`, `speech_cue` "syllables and pauses" and `audio_kinds` (the shipped
    manifest) it reads the default rule; without `audio_kinds`, the counted rule; with none of
    them, the rule shipped before (module docstring)."""

    def __init__(
        self,
        n_mels: int,
        n_classes: int,
        genre_tags: dict | None = None,
        tag_base_rates: dict[str, float] | None = None,
        speech_cue: str = "pauses",
        audio_kinds: dict | None = None,
        kind_given_genre: dict[str, list[float]] | None = None,
    ):
        super().__init__()
        check_input(n_mels)
        genre_tags = genre_tags if genre_tags is not None else genre_tags_json()
        if n_classes != len(GENRES) or sorted(genre_tags) != sorted(GENRES):
            raise ValueError(f"genre_tags must map exactly the {len(GENRES)} genres {list(GENRES)}")
        any_of = torch.zeros(len(GENRES), len(PAIR_TAGS), dtype=torch.bool)
        none_of = torch.zeros_like(any_of)
        coverage = torch.ones(len(GENRES))
        for row, genre in enumerate(GENRES):
            for mask, key in ((any_of, "any_of"), (none_of, "none_of")):
                for tag in genre_tags[genre].get(key, []):
                    if tag not in PAIR_TAGS:
                        raise ValueError(
                            f"{genre}: unknown tag {tag!r} (tags are 'msd:<tag>' or 'mtt:<tag>')"
                        )
                    mask[row, PAIR_TAGS.index(tag)] = True
            if not any_of[row].any():
                raise ValueError(f"{genre}: needs at least one any_of tag")
            coverage[row] = float(genre_tags[genre].get("coverage", 1.0))
            if not 0.0 < coverage[row] <= 1.0:
                raise ValueError(f"{genre}: coverage must be in (0, 1], got {coverage[row].item():g}")
        self.register_buffer("any_of", any_of, persistent=False)
        self.register_buffer("none_of", none_of, persistent=False)
        self.register_buffer("coverage", coverage, persistent=False)
        rates = None
        if tag_base_rates is not None:
            if sorted(tag_base_rates) != sorted(PAIR_TAGS):
                raise ValueError(
                    f"tag_base_rates needs each of the {len(PAIR_TAGS)} tags, as 'msd:<tag>' or 'mtt:<tag>'"
                )
            rates = torch.tensor([float(tag_base_rates[tag]) for tag in PAIR_TAGS])
            if not ((rates > 0) & (rates < 1)).all():
                raise ValueError("tag_base_rates must lie strictly between 0 and 1")
        # None: the rule before, which estimates the base rates from the weights (tag_base_rates)
        self.register_buffer("counted_base_rates", rates, persistent=False)
        if speech_cue not in SPEECH_CUES:
            raise ValueError(f"speech_cue must be one of {sorted(SPEECH_CUES)}, got {speech_cue!r}")
        self.speech_cue_name = speech_cue
        if (audio_kinds is None) != (kind_given_genre is None):
            raise ValueError("audio_kinds and kind_given_genre come together: give both or neither")
        self.audio_kinds = (  # None: no kind-of-audio evidence (model/audio_kinds.py)
            AudioKinds(audio_kinds, kind_given_genre) if audio_kinds is not None else None
        )

    def tag_base_rates(self) -> Tensor:
        """(100,) each tag's base rate: counted in the taggers' labels (the counted rule), or the
        estimate of the rule before, the output layer at the mean embedding (batch-norm fixes it at its bias),
        which underestimates common tags up to a hundredfold (FACTS, README)."""
        if self.counted_base_rates is not None:
            return self.counted_base_rates
        return torch.cat([torch.sigmoid(t.output(t.dense_norm.bias)) for t in (self.msd, self.mtt)]).float()

    def tag_ratios(self, tag_probs: Tensor) -> Tensor:
        """(batch, 100) tag probabilities -> (batch, 16) the genres' tag likelihood ratios by the
        table, by the counted rule or the rule before (module docstring)."""
        base = self.tag_base_rates()
        if self.counted_base_rates is None:
            present = torch.where(self.any_of, (tag_probs / base)[:, None, :], 0.0).amax(dim=2)
            absent = 1.0 - torch.where(self.none_of, tag_probs[:, None, :], 0.0).amax(dim=2)
            base_absent = 1.0 - torch.where(self.none_of, base, 0.0).amax(dim=1)
            return (present * absent / base_absent).clamp_min(1e-6)
        factors = (_odds(tag_probs) / _odds(base))[:, None, :]  # each tag's Bayes factor
        present = torch.where(self.any_of, factors, 0.0).amax(dim=2)
        against = torch.where(self.none_of, factors, 0.0).amax(dim=2)
        tagged = present / torch.where(self.none_of.any(dim=1), against, 1.0)
        return ((1.0 - self.coverage) + self.coverage * tagged).clamp_min(1e-6)

    def cue_likelihood(self, speech: Tensor) -> Tensor:
        """(batch, 2) speech measures (model/speech.py: pause fraction, syllabic score) -> (batch,
        16) P(observed cue | genre), by this member's cue (`SPEECH_CUES`)."""
        cue = SPEECH_CUES[self.speech_cue_name]
        pausing = (speech[:, 0] / SPEECH_PAUSES).clamp(0.0, 1.0)
        if self.speech_cue_name == "pauses":  # float32 throughout, as the rule before made its rows
            given = torch.full((len(GENRES),), cue["given_music"], device=speech.device)
            given[GENRES.index("Spoken")] = cue["given_speech"]
            return pausing[:, None] * given + (1 - pausing[:, None]) * (1 - given)
        syllabic = speech[:, 1].clamp(0.0, 1.0)
        cells = torch.stack(  # soft membership of the four cells [syllabic][pausing]
            [
                (1 - syllabic) * (1 - pausing),
                (1 - syllabic) * pausing,
                syllabic * (1 - pausing),
                syllabic * pausing,
            ],
            dim=1,
        )
        table = torch.tensor(
            [cue["given_music"], cue["given_speech"]], dtype=cells.dtype, device=cells.device
        )
        given_music, given_speech = (cells @ table.flatten(1).T).unbind(dim=1)
        likelihood = given_music[:, None].repeat(1, len(GENRES))
        likelihood[:, GENRES.index("Spoken")] = given_speech
        return likelihood

    def forward(self, spec: Tensor) -> Tensor:
        return self.head_from(*self.backbone(spec))

    def head_from(self, tag_logits: Tensor, embedding: Tensor, speech: Tensor) -> Tensor:
        """(batch, 16) log evidence of each genre for each chunk."""
        ratios = self.tag_ratios(torch.sigmoid(tag_logits.float()))
        evidence = torch.log(ratios) + torch.log(self.cue_likelihood(speech.float()))
        if self.audio_kinds is not None:
            evidence = evidence + torch.log(self.audio_kinds(embedding, speech))
        return evidence


def _odds(p: Tensor) -> Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return p / (1 - p)
