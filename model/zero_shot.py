"""Zero-shot genres: musicnn's MSD and MTT tags -> the 16 FMA genres, fitted on nothing.

Each genre is read off hallmark tags the taggers already know (table below), as a likelihood
ratio. A tag probability is a posterior under the tagger's own training data (MSD is rock-heavy,
MTT classical-heavy); divided by that tag's base rate -- its probability for the average
training clip, read from the weights (the output layer applied to the mean penultimate
embedding, which batch-norm fixes at its bias) -- it says how much more likely the tag is here
than in general. On every 3-s chunk:

    ratio(genre) = max over its `any_of` tags t of P(t) / base(t)
                   x (1 - max over its `none_of` tags of P) / (1 - the same for the base rates)
    evidence(genre) = ratio(genre) x P(speech cue | genre)

"Max" because one hallmark suffices: a punk track need not also sound like metal to be rock.
Each tag is compared with its own base rate (a tag of the rock-heavy MSD against MSD's rock
rate, MTT's "rock" against MTT's), never one tag's probability with another tag's base.

The taggers never heard speech without music, so Spoken gets a cue of its own (model/speech.py):
the fraction of a chunk spent in pauses. A chunk is speech-like to the degree c = min(1,
pauses / `SPEECH_PAUSES`); the cue's likelihood is P(cue | Spoken) = `CUE_GIVEN_SPEECH` and
P(cue | a music genre) = `CUE_GIVEN_MUSIC`, so a pause-rich chunk multiplies Spoken's odds
against each music genre by 0.9 / 0.01 = 90, and a chunk without pauses divides them by 10.
These three numbers are stated beliefs about speech and music (phrase pauses take a fifth to a
third of read speech; music rarely falls to its noise floor within 3 s), not optimised values;
`SPEECH_PAUSES` was set after seeing the pause fractions of the real-music corpus (README).

The ensemble averages the log evidence over the clip's chunks and adds the log of the
FMA-medium class prior (manifest kind `zero_shot`): a Bayes update of the prior by the taggers'
evidence, so its confidence is what those ratios support, no temperature. No weight, threshold
or temperature was fitted to FMA, and nothing was optimised on any test.

| genre | evidence from | why |
|---|---|---|
| Blues | msd:blues | the tag itself |
| Classical | mtt:classical, mtt:classic, mtt:opera, mtt:harpsichord, mtt:strings, mtt:violin, mtt:cello, mtt:harp, mtt:choir, mtt:choral | MTT's classical tags; its orchestral instruments and choirs come from Magnatune's classical catalogue |
| Country | msd:country, mtt:country | the tag in both vocabularies |
| Easy Listening | msd:easy listening | the tag itself (FMA's lounge / easy-listening) |
| Electronic | msd:electronic, msd:electronica, msd:electro, msd:House, mtt:electronic, mtt:techno | electronic styles named by either tagger |
| Experimental | msd:experimental, mtt:weird | the tag itself; MTT has only "weird" for the avant-garde |
| Folk | msd:folk | the tag itself |
| Hip-Hop | msd:Hip-Hop | the tag itself |
| Instrumental | msd:instrumental, msd:ambient, mtt:ambient, mtt:new age | FMA files ambient and soundtrack-like music under Instrumental |
| International | mtt:indian, mtt:sitar | the only non-Western styles either tagger knows; FMA's International is wider (Latin, African, ...) |
| Jazz | msd:jazz | the tag itself |
| Old-Time / Historic | msd:oldies | early recordings; Last.fm's "oldies" is the nearest notion |
| Pop | msd:pop, msd:indie pop, mtt:pop | the tag in both vocabularies |
| Rock | msd:rock, msd:alternative rock, msd:indie rock, msd:classic rock, msd:hard rock, msd:punk, msd:metal, msd:heavy metal, msd:Progressive rock, mtt:rock, mtt:metal | FMA's Rock holds punk, metal and progressive |
| Soul-RnB | msd:soul, msd:rnb, msd:funk | FMA's Soul-RnB holds funk |
| Spoken | mtt:voice, mtt:male voice, mtt:man, none of mtt:beat, mtt:drums, mtt:guitar, mtt:piano, mtt:synth, mtt:strings; and the speech cue | no speech tag exists: a voice with no instruments, in a chunk with pauses |
"""

from __future__ import annotations

import torch
from torch import Tensor

from .genres import GENRES
from .musicnn import PAIR_TAGS, MusicnnPair, check_input

SPEECH_PAUSES = 0.10  # a chunk with this fraction of pause frames (or more) is fully speech-like
CUE_GIVEN_SPEECH = 0.9  # P(speech cue | Spoken): most speech chunks hold pauses
CUE_GIVEN_MUSIC = 0.01  # P(speech cue | a music genre): music rarely does

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


def genre_tags_json() -> dict[str, dict[str, list[str]]]:
    """`GENRE_TAGS` as the manifest stores it (the member's hparams), so it can be read and edited there."""
    return {
        genre: {"any_of": list(any_of), "none_of": list(none_of)}
        for genre, (any_of, none_of) in GENRE_TAGS.items()
    }


class MusicnnZeroShot(MusicnnPair):
    """(batch, 96 mels, frames) -> (batch, 16) log genre evidence; see the module docstring.

    A tagger pair with a fixed head, so its state dict is the pair's (weights/musicnn/musicnn_pair.pt)."""

    def __init__(self, n_mels: int, n_classes: int, genre_tags: dict | None = None):
        super().__init__()
        check_input(n_mels)
        genre_tags = genre_tags if genre_tags is not None else genre_tags_json()
        if n_classes != len(GENRES) or sorted(genre_tags) != sorted(GENRES):
            raise ValueError(f"genre_tags must map exactly the {len(GENRES)} genres {list(GENRES)}")
        any_of = torch.zeros(len(GENRES), len(PAIR_TAGS), dtype=torch.bool)
        none_of = torch.zeros_like(any_of)
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
        self.register_buffer("any_of", any_of, persistent=False)
        self.register_buffer("none_of", none_of, persistent=False)

    def tag_base_rates(self) -> Tensor:
        """(100,) each tag's probability for the taggers' average training clip (module docstring)."""
        return torch.cat([torch.sigmoid(t.output(t.dense_norm.bias)) for t in (self.msd, self.mtt)]).float()

    def tag_ratios(self, tag_probs: Tensor) -> Tensor:
        """(batch, 100) tag probabilities -> (batch, 16) the genres' tag likelihood ratios by the table."""
        base = self.tag_base_rates()
        present = torch.where(self.any_of, (tag_probs / base)[:, None, :], 0.0).amax(dim=2)
        absent = 1.0 - torch.where(self.none_of, tag_probs[:, None, :], 0.0).amax(dim=2)
        base_absent = 1.0 - torch.where(self.none_of, base, 0.0).amax(dim=1)
        return (present * absent / base_absent).clamp_min(1e-6)

    def cue_likelihood(self, pauses: Tensor) -> Tensor:
        """(batch,) pause fractions -> (batch, 16) P(observed cue | genre) (module docstring)."""
        speech_like = (pauses / SPEECH_PAUSES).clamp(0.0, 1.0)[:, None]
        given = torch.full((len(GENRES),), CUE_GIVEN_MUSIC, device=pauses.device)
        given[GENRES.index("Spoken")] = CUE_GIVEN_SPEECH
        return speech_like * given + (1 - speech_like) * (1 - given)

    def forward(self, spec: Tensor) -> Tensor:
        return self.head_from(*self.backbone(spec))

    def head_from(self, tag_logits: Tensor, embedding: Tensor, pauses: Tensor) -> Tensor:
        """(batch, 16) log evidence of each genre for each chunk."""
        ratios = self.tag_ratios(torch.sigmoid(tag_logits.float()))
        return torch.log(ratios) + torch.log(self.cue_likelihood(pauses.float()))
