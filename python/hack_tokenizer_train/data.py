"""Corpus -> token windows, and the deterministic order they are visited in (so a resumed run sees the same batches)."""
from __future__ import annotations

import gzip
import math
import os
from typing import Optional

import torch
from tokenizers import Tokenizer

from .job import JobError


def read_lines(files: list[str], max_bytes: Optional[int], key: str = "corpus") -> tuple[list[str], int]:
    """Paragraphs (one per line) from plain or gzip files (detected by content), strict UTF-8, up to max_bytes in all."""
    lines: list[str] = []
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(f, "rb") as fh:  # type: ignore[operator]
            for n, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise JobError(key, f"{f}: invalid UTF-8 on line {n} ({e.reason})")
                if max_bytes is not None and total + len(raw) > max_bytes:
                    return lines, total
                total += len(raw)
                line = line.rstrip("\r\n")
                if line:
                    lines.append(line)
    return lines, total


def token_ids(model_dir: str, files: list[str], max_bytes: Optional[int], key: str = "corpus") -> tuple[torch.Tensor, dict]:
    """Tokenize every paragraph with its newline (no special tokens) and concatenate.

    The newline stays, as in the held-out files that bits/byte is measured on (and as the TypeScript engine's
    chunks). Joining paragraphs with EOS instead (the first version) teaches EOS where held-out text has a
    newline: the likely cause of a short full run measuring worse PT bits/byte than the base model.
    """
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    lines, nbytes = read_lines(files, max_bytes, key)
    ids: list[int] = []
    for enc in tok.encode_batch([line + "\n" for line in lines], add_special_tokens=False):
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long), {"bytes": nbytes, "paragraphs": len(lines), "tokens": len(ids)}


def cut_windows(ids: torch.Tensor, seq_len: int, what: str = "corpus") -> torch.Tensor:
    """Non-overlapping windows of seq_len tokens (each stage cuts its own: stages may differ in seq_len)."""
    n = ids.numel() // seq_len
    if n == 0:
        raise JobError(what, f"the {what} gives {ids.numel()} tokens, fewer than one window of seq_len {seq_len}")
    return ids[: n * seq_len].view(n, seq_len)


def token_windows(model_dir: str, files: list[str], seq_len: int, max_bytes: Optional[int]) -> tuple[torch.Tensor, dict]:
    ids, info = token_ids(model_dir, files, max_bytes)
    windows = cut_windows(ids, seq_len)
    return windows, {**info, "windows": windows.shape[0]}


def replay_fraction(ratio: float) -> float:
    """Replay windows per corpus window -> the fraction of all visited windows that are replay."""
    return ratio / (1.0 + ratio)


def visit(k: int, frac: float) -> tuple[bool, int]:
    """The k-th visited window of a stage: (is it replay, its index in its own stream).

    Replay windows are spread evenly: window k is replay when floor((k + 1) f) passes an integer. A pure
    function of k, so a resumed run sees the same mix.
    """
    if frac <= 0.0:
        return False, k
    before = math.floor(k * frac)
    if math.floor((k + 1) * frac) > before:
        return True, before
    return False, k - before


def sample_index(seed: int, n: int, k: int, cache: dict) -> int:
    """The k-th window visited: epoch k // n in a permutation seeded by (seed, epoch)."""
    epoch = k // n
    perm = cache.get(epoch)
    if perm is None:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g)
        cache.clear()
        cache[epoch] = perm
    return int(perm[k % n])
