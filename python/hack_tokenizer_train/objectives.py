"""Pieces of the distill and alm objectives (issue 16, item 3) that do not depend on the training loop.

Alignment is by bytes: the extended and the original tokenizer split the same text, and a student position is
matched with the teacher position whose token ends at the same byte. Byte ends come from each token's byte length,
not from the tokenizer's offsets (those count code points, so "ç" would be 1 where it is 2 bytes).
"""
from __future__ import annotations

from typing import Sequence

import torch


def _byte_level_decoder() -> dict[str, int]:
    # GPT-2's byte-to-unicode table, inverted: a ByteLevel vocabulary entry is one such character per byte
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_OF = _byte_level_decoder()


def token_byte_lengths(tokenizer) -> list[int]:
    """Byte length of every id of a `tokenizers.Tokenizer` with a ByteLevel vocabulary. Added tokens (how the
    launcher and the tests add new tokens) are stored as plain text, so their length is their UTF-8 length."""
    added = {i: t.content for i, t in tokenizer.get_added_tokens_decoder().items()}
    lengths = [0] * tokenizer.get_vocab_size()
    for piece, i in tokenizer.get_vocab(with_added_tokens=False).items():
        lengths[i] = len(piece) if all(c in _BYTE_OF for c in piece) else len(piece.encode("utf-8"))
    for i, content in added.items():
        lengths[i] = len(content.encode("utf-8"))
    return lengths


def byte_ends(ids: Sequence[int], lengths: Sequence[int]) -> list[int]:
    """The byte offset where each token ends (exclusive) in the text the ids spell."""
    ends, at = [], 0
    for i in ids:
        at += lengths[i]
        ends.append(at)
    return ends


def align_positions(student_ends: Sequence[int], teacher_ends: Sequence[int]) -> list[tuple[int, int]]:
    """(student position, teacher position) pairs whose tokens end at the same byte. A student token that merges
    several original tokens is matched with the last of them; one that ends inside an original token (it can when
    the two tokenizers cut a word differently) has no match and is left out."""
    where = {e: j for j, e in enumerate(teacher_ends)}
    return [(i, where[e]) for i, e in enumerate(student_ends) if e in where]


def distill_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Token distillation (Dobler et al. 2025): mean over aligned positions and hidden units of the squared
    difference between the student's and the teacher's last hidden states ([seq, hidden] each, one window)."""
    s = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    t = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return torch.nn.functional.mse_loss(student_hidden[s].float(), teacher_hidden[t].float().detach())


def chunk_logprob_targets(teacher_logits: torch.Tensor, teacher_ids: Sequence[int], student_ends: Sequence[int],
                          teacher_ends: Sequence[int], new_ids: set[int], student_ids: Sequence[int]) -> list[tuple[int, int, float]]:
    """alm targets for one window: for each student position i whose NEXT token n = student_ids[i+1] is new, the
    teacher's log p(p1..pk | context) = sum of its log-probs of the original pieces p1..pk that spell n, read at
    the teacher positions before each piece. Returns (student position i, new id n, target log-prob). Positions
    where the pieces are not aligned (n does not start and end on original token boundaries) are left out."""
    logp = torch.log_softmax(teacher_logits.float(), dim=-1)
    end_at = {e: j for j, e in enumerate(teacher_ends)}
    out = []
    for i in range(len(student_ids) - 1):
        n = student_ids[i + 1]
        if n not in new_ids or student_ends[i] not in end_at or student_ends[i + 1] not in end_at:
            continue
        first, last = end_at[student_ends[i]] + 1, end_at[student_ends[i + 1]]
        target = sum(float(logp[j - 1, teacher_ids[j]]) for j in range(first, last + 1))
        out.append((i, n, target))
    return out
