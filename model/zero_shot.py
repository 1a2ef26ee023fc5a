"""Zero-shot genres: musicnn's MSD and MTT tags -> the 16 FMA genres, fitted on nothing.

Each genre is read off hallmark tags the taggers already know (table below). On every 3-s chunk:

    evidence(genre) = max over its `any_of` tags of P(tag)  x  (1 - max over its `none_of` tags of P(tag))

"Max" because one hallmark suffices: a punk track need not also sound like metal to be rock.
A tag probability is a posterior under the tagger's own training data (MSD is rock-heavy, MTT
classical-heavy), so evidence is divided by the same rule applied to the taggers' base rates --
each tag's probability for the average training clip, read from the weights (the output layer
applied to the mean penultimate embedding, which batch-norm fixes at its bias). That ratio is a
likelihood ratio; the ensemble averages its log over the clip's chunks and adds the log of the
FMA-medium class prior (manifest kind `zero_shot`). No weight, temperature or threshold was
fitted to FMA or to any test: this is what the taggers know, combined by a rule.

| genre | evidence from | why |
|---|---|---|
| Blues | msd:blues | the tag itself |
| Classical | mtt:classical, mtt:classic, mtt:opera, mtt:harpsichord | MTT's classical tags; opera and harpsichord are classical-only in MTT |
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
| Spoken | mtt:voice, mtt:male voice, mtt:man, none of mtt:beat, mtt:drums, mtt:guitar, mtt:piano, mtt:synth, mtt:strings | no speech tag exists: a voice with no instruments is the closest reading |
"""

from __future__ import annotations

import torch
from torch import Tensor

from .genres import GENRES
from .musicnn import PAIR_TAGS, MusicnnPair, check_input

# genre -> (any_of, none_of); the table in the module docstring, in code.
GENRE_TAGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Blues": (("msd:blues",), ()),
    "Classical": (("mtt:classical", "mtt:classic", "mtt:opera", "mtt:harpsichord"), ()),
    "Country": (("msd:country", "mtt:country"), ()),
    "Easy Listening": (("msd:easy listening",), ()),
    "Electronic": (("msd:electronic", "msd:electronica", "msd:electro", "msd:House", "mtt:electronic",
                    "mtt:techno"), ()),
    "Experimental": (("msd:experimental", "mtt:weird"), ()),
    "Folk": (("msd:folk",), ()),
    "Hip-Hop": (("msd:Hip-Hop",), ()),
    "Instrumental": (("msd:instrumental", "msd:ambient", "mtt:ambient", "mtt:new age"), ()),
    "International": (("mtt:indian", "mtt:sitar"), ()),
    "Jazz": (("msd:jazz",), ()),
    "Old-Time / Historic": (("msd:oldies",), ()),
    "Pop": (("msd:pop", "msd:indie pop", "mtt:pop"), ()),
    "Rock": (("msd:rock", "msd:alternative rock", "msd:indie rock", "msd:classic rock", "msd:hard rock",
              "msd:punk", "msd:metal", "msd:heavy metal", "msd:Progressive rock", "mtt:rock", "mtt:metal"), ()),
    "Soul-RnB": (("msd:soul", "msd:rnb", "msd:funk"), ()),
    "Spoken": (("mtt:voice", "mtt:male voice", "mtt:man"),
               ("mtt:beat", "mtt:drums", "mtt:guitar", "mtt:piano", "mtt:synth", "mtt:strings")),
}


def genre_tags_json() -> dict[str, dict[str, list[str]]]:
    """`GENRE_TAGS` as the manifest stores it (the member's hparams), so it can be read and edited there."""
    return {genre: {"any_of": list(any_of), "none_of": list(none_of)} for genre, (any_of, none_of) in GENRE_TAGS.items()}


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
                        raise ValueError(f"{genre}: unknown tag {tag!r} (tags are 'msd:<tag>' or 'mtt:<tag>')")
                    mask[row, PAIR_TAGS.index(tag)] = True
            if not any_of[row].any():
                raise ValueError(f"{genre}: needs at least one any_of tag")
        self.register_buffer("any_of", any_of, persistent=False)
        self.register_buffer("none_of", none_of, persistent=False)

    def evidence(self, tag_probs: Tensor) -> Tensor:
        """(batch, 100) tag probabilities -> (batch, 16) genre evidence by the table."""
        tags = tag_probs[:, None, :]
        present = torch.where(self.any_of, tags, 0.0).amax(dim=2)
        absent = 1.0 - torch.where(self.none_of, tags, 0.0).amax(dim=2)
        return (present * absent).clamp_min(1e-6)

    def base_evidence(self) -> Tensor:
        """(16,) the evidence of the taggers' average training clip (see the module docstring)."""
        base = [torch.sigmoid(t.output(t.dense_norm.bias)) for t in (self.msd, self.mtt)]
        return self.evidence(torch.cat(base)[None].float())[0]

    def forward(self, spec: Tensor) -> Tensor:
        return self.head_from(*self.backbone(spec))

    def head_from(self, tag_logits: Tensor, embedding: Tensor) -> Tensor:
        tags = torch.sigmoid(tag_logits.float())
        return torch.log(self.evidence(tags)) - torch.log(self.base_evidence())
