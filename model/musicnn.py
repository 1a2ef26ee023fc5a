"""musicnn (Pons & Serra 2019), ported to PyTorch: pretrained music taggers as genre knowledge.

The `musicnn` package (ISC licence, Music Technology Group, UPF) ships two taggers with the same
architecture: one trained on the Million Song Dataset (50 Last.fm tags: rock, jazz, Hip-Hop, ...)
and one on MagnaTagATune (50 tags: classical, techno, sitar, ...). `tools/convert_musicnn.py`
turns their TensorFlow checkpoints into the state dicts of `MusicnnTagger` below; a test checks
the port against outputs of the original TensorFlow graph.

The network, on a (frames, 96 mels) patch of log10(1 + 10000 * mel power):
- front end: musically motivated filters over the batch-normalised input. Two "timbral" convs
  span 7 frames x 40 % / 70 % of the mel axis; three "temporal" convs span 128 / 64 / 32 frames
  x 1 band. Each is ReLU -> batch-norm -> max over frequency, giving 204+204+51*3 = 561 channels
  per frame.
- mid end: three 1-D convs over time (64 channels, kernel 7), the last two residual; the front
  end and all three outputs are concatenated (561 + 3*64 = 753 channels per frame).
- back end: max and mean over time (interleaved per channel, as TensorFlow's flatten left them),
  batch-norm, dense 200 + ReLU + batch-norm (the "penultimate" embedding), dense to 50 tags.
Batch-norm follows ReLU throughout, with TensorFlow's epsilon of 1e-3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .networks.base import GenreNetwork
from .spectrogram import SpectrogramConfig
from .speech import speech_features

# The input musicnn was trained on; chunks of 187 frames (3 s), as in its training.
MUSICNN_SPECTROGRAM = SpectrogramConfig(n_mels=96, compression="log10_1p")
MUSICNN_CHUNK_FRAMES = 187
MUSICNN_CHUNK_SECONDS = (
    MUSICNN_CHUNK_FRAMES * MUSICNN_SPECTROGRAM.hop_length / MUSICNN_SPECTROGRAM.sample_rate
)

MSD_TAGS: tuple[str, ...] = (
    "rock",
    "pop",
    "alternative",
    "indie",
    "electronic",
    "female vocalists",
    "dance",
    "00s",
    "alternative rock",
    "jazz",
    "beautiful",
    "metal",
    "chillout",
    "male vocalists",
    "classic rock",
    "soul",
    "indie rock",
    "Mellow",
    "electronica",
    "80s",
    "folk",
    "90s",
    "chill",
    "instrumental",
    "punk",
    "oldies",
    "blues",
    "hard rock",
    "ambient",
    "acoustic",
    "experimental",
    "female vocalist",
    "guitar",
    "Hip-Hop",
    "70s",
    "party",
    "country",
    "easy listening",
    "sexy",
    "catchy",
    "funk",
    "electro",
    "heavy metal",
    "Progressive rock",
    "60s",
    "rnb",
    "indie pop",
    "sad",
    "House",
    "happy",
)
MTT_TAGS: tuple[str, ...] = (
    "guitar",
    "classical",
    "slow",
    "techno",
    "strings",
    "drums",
    "electronic",
    "rock",
    "fast",
    "piano",
    "ambient",
    "beat",
    "violin",
    "vocal",
    "synth",
    "female",
    "indian",
    "opera",
    "male",
    "singing",
    "vocals",
    "no vocals",
    "harpsichord",
    "loud",
    "quiet",
    "flute",
    "woman",
    "male vocal",
    "no vocal",
    "pop",
    "soft",
    "sitar",
    "solo",
    "man",
    "classic",
    "choir",
    "voice",
    "new age",
    "dance",
    "male voice",
    "female vocal",
    "beats",
    "harp",
    "cello",
    "no voice",
    "weird",
    "country",
    "metal",
    "female voice",
    "choral",
)
# Tags of the pair, as "msd:<tag>" / "mtt:<tag>", in the order of `MusicnnPair` outputs.
PAIR_TAGS: tuple[str, ...] = tuple(f"msd:{t}" for t in MSD_TAGS) + tuple(f"mtt:{t}" for t in MTT_TAGS)
EMBEDDING_SIZE = 200  # per tagger

_EPS = 1e-3  # TensorFlow's batch-norm epsilon


class _ConvReluNorm(nn.Module):
    """conv -> ReLU -> batch-norm, musicnn's order (the mid end)."""

    def __init__(self, conv: nn.Module, channels: int):
        super().__init__()
        self.conv = conv
        self.norm = nn.BatchNorm1d(channels, eps=_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(F.relu(self.conv(x)))


class _FrontEndBlock(nn.Module):
    """conv -> ReLU -> batch-norm -> max over frequency: (batch, 1, frames, mels) -> (batch, C, frames).

    `pad` zero-pads the time axis (before, after) to keep every frame, like the original.
    In inference the max is taken before ReLU and batch-norm, on the small (batch, C, frames)
    result: both are monotone per channel (batch-norm decreasing where its scale is negative, so
    there the min is taken instead). Same numbers, less work than the literal order.
    """

    def __init__(self, channels: int, kernel: tuple[int, int], pad: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel)
        self.norm = nn.BatchNorm2d(channels, eps=_EPS)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (0, 0, *self.pad))
        if self.training:
            return self.norm(F.relu(self.conv(x))).amax(dim=3)
        sign = torch.where(self.norm.weight < 0, -1.0, 1.0)  # direction of the batch-norm per channel
        weight, bias = self.conv.weight * sign[:, None, None, None], self.conv.bias * sign
        if torch.onnx.is_in_onnx_export():
            u = _conv_max_for_onnxruntime(x, weight, bias)
        else:
            u = F.conv2d(x, weight, bias).amax(dim=3)
        u = u * sign[:, None]  # max (or min) over frequency of the conv output
        n = self.norm
        return F.batch_norm(F.relu(u), n.running_mean, n.running_var, n.weight, n.bias, False, 0.0, n.eps)


def _conv_max_for_onnxruntime(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """`F.conv2d(x, weight, bias).amax(dim=3)` in the form ONNX Runtime runs fastest.

    Its CPU convolutions write a channel-blocked layout (NCHWc: blocks of 8 channels with AVX2,
    16 with AVX-512) that its max-pool reads directly only when the channel count is a whole
    number of blocks. A ReduceMax, or a max-pool over 204 or 51 channels, makes it copy every
    full-size conv output back to the plain layout first. So the filters are padded with zeros to
    a multiple of 16 channels (whole blocks on both), max-pooled over the whole frequency axis,
    and cut back: same numbers, no copy. In torch's eager mode the plain amax is the faster one
    (both measured: README, Benchmarks).
    """
    channels = weight.shape[0]
    extra = -channels % 16
    weight = torch.cat([weight, weight.new_zeros((extra, *weight.shape[1:]))])
    bias = torch.cat([bias, bias.new_zeros(extra)])
    z = F.conv2d(x, weight, bias)
    # The pool spans the frequency axis, fixed by the 96 mels (tracing keeps it as a constant);
    # flatten, not squeeze: the exporter turns squeeze into a run-time shape test.
    return F.max_pool2d(z, kernel_size=(1, int(z.shape[3]))).flatten(2)[:, :channels]


class MusicnnTagger(nn.Module):
    """One musicnn tagger: (batch, 96 mels, frames) -> 50 tag logits (see the module docstring)."""

    def __init__(self, n_tags: int = 50, n_mels: int = 96):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1, eps=_EPS)
        # (frames, mels) kernels; the 7-frame timbral kernels see 40 % and 70 % of the mel axis.
        self.timbral = nn.ModuleList(
            _FrontEndBlock(204, (7, int(share * n_mels)), (3, 3)) for share in (0.4, 0.7)
        )
        # TensorFlow's 'same' padding for an even kernel k: (k - 1) // 2 before, k // 2 after
        self.temporal = nn.ModuleList(
            _FrontEndBlock(51, (length, 1), ((length - 1) // 2, length // 2)) for length in (128, 64, 32)
        )
        self.midend = nn.ModuleList(
            _ConvReluNorm(nn.Conv1d(width, 64, 7, padding=3), 64) for width in (561, 64, 64)
        )
        self.pool_norm = nn.BatchNorm1d(2 * 753, eps=_EPS)
        self.dense = nn.Linear(2 * 753, EMBEDDING_SIZE)
        self.dense_norm = nn.BatchNorm1d(EMBEDDING_SIZE, eps=_EPS)
        self.dropout = nn.Dropout(0.5)
        self.output = nn.Linear(EMBEDDING_SIZE, n_tags)

    def forward(self, spec: Tensor) -> Tensor:
        return self.tags_and_embedding(spec)[0]

    def tags_and_embedding(self, spec: Tensor) -> tuple[Tensor, Tensor]:
        """Tag logits (batch, 50) and the penultimate embedding (batch, 200)."""
        x = self.input_norm(spec.transpose(1, 2).unsqueeze(1))  # (batch, 1, frames, mels)
        features = [
            torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)
        ]  # (batch, 561, frames)
        previous = features[0]
        for i, block in enumerate(self.midend):
            previous = block(previous) + (previous if i > 0 else 0)
            features.append(previous)
        x = torch.cat(features, dim=1)  # (batch, 753, frames)
        pooled = torch.stack([x.amax(dim=2), x.mean(dim=2)], dim=2).flatten(1)  # max/mean interleaved
        embedding = self.dense_norm(F.relu(self.dense(self.dropout(self.pool_norm(pooled)))))
        return self.output(self.dropout(embedding)), embedding


class MusicnnPair(GenreNetwork):
    """The MSD and the MTT tagger side by side: 100 tag logits (`PAIR_TAGS` order) and a
    400-dimensional embedding per chunk. The genre networks on them (model/networks/musicnn_transfer.py,
    model/zero_shot.py) share the frozen pair between members (`backbone_key`)."""

    chunks_per_call = 16  # the front end's maps are ~14 MB per chunk: bound the peak memory

    def __init__(self):
        super().__init__()
        self.msd = MusicnnTagger(len(MSD_TAGS))
        self.mtt = MusicnnTagger(len(MTT_TAGS))

    def forward(self, spec: Tensor) -> tuple[Tensor, Tensor]:
        return self.backbone(spec)

    def backbone(self, spec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(batch, 96, frames) -> tag logits (batch, 100), embedding (batch, 400) and the chunk's
        speech features (batch, 2): the speech cue the taggers lack (model/speech.py)."""
        return (*self.taggers(spec), self.speech_cue(spec))

    def speech_cue(self, spec: Tensor) -> Tensor:
        """(batch, 96, frames) -> (batch, 2) what model/speech.py measures of each chunk for the
        speech cue (pause fraction, syllabic score)."""
        return speech_features(spec)

    def taggers(self, spec: Tensor) -> tuple[Tensor, Tensor]:
        """(batch, 96, frames) -> tag logits (batch, 100) and embedding (batch, 400) of both taggers."""
        msd_tags, msd_embedding = self.msd.tags_and_embedding(spec)
        mtt_tags, mtt_embedding = self.mtt.tags_and_embedding(spec)
        return torch.cat([msd_tags, mtt_tags], dim=1), torch.cat([msd_embedding, mtt_embedding], dim=1)

    def backbone_key(self) -> str | None:
        """Identifies the taggers' weights when they are frozen (None when they train), so an
        ensemble runs them once for all members that share them (see model/ensemble.py)."""
        if getattr(self, "fine_tune", False):
            return None
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            if name.startswith(("msd.", "mtt.")):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def export_backbone(self, example: Tensor, threads: int) -> Callable:
        """`backbone` with the taggers on ONNX Runtime (model/exported.py) and the speech cue in torch."""
        from .exported import ExportedFunction

        taggers = ExportedFunction(_Taggers(self), example, ["tags", "embedding"], threads)

        def backbone(chunks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            return (*taggers(chunks), self.speech_cue(chunks))

        backbone.chunks_per_call = taggers.chunks_per_call
        return backbone


class _Taggers(nn.Module):
    """The part of a pair that runs its taggers, as a module of its own for the exporter."""

    def __init__(self, network: MusicnnPair):
        super().__init__()
        self.network = network
        self.chunks_per_call = network.chunks_per_call

    def forward(self, chunks: Tensor) -> tuple[Tensor, Tensor]:
        return self.network.taggers(chunks)


def check_input(n_mels: int) -> None:
    if n_mels != MUSICNN_SPECTROGRAM.n_mels:
        raise ValueError(f"musicnn takes {MUSICNN_SPECTROGRAM.n_mels} mel bands, got {n_mels}")
