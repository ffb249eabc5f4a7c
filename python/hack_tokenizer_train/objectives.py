"""What a stage minimizes: ce (next-token cross-entropy), distill and alm (issue 16, item 3).

distill and alm compare the extended model with the original model on the same text. The original's view of a
window is the window with every new token replaced by its pieces (its tokenization by the original tokenizer): in
merges mode that is exactly the original tokenization of the text, since continued BPE only adds merges ranked
after every original one. The teacher is the model itself on those ids: the objectives run under the rows recipe
(checked in job.py), which keeps the body and every old row bit-identical to the original's, so the model reading
old ids only is the original model (for alm, with the new tokens' logits left out of the softmax). No second copy
of the model is loaded.

- distill (Dobler et al. 2025, token distillation): mean squared difference between the last hidden states of the
  extended model on the window and of the original on its pieces, at every position, matched with the original's
  position of the token's last piece. It reaches the input rows only (the output matrix is not in the path): for
  an untied model the new output rows keep their init.
- alm: cross-entropy plus, at each position whose next token n is new, (log p(n) - T)^2, where T is the
  original's log-probability of n's pieces in the same context (the sum of its log-probs of each piece): the
  output rows learn to give a new token the probability the original gave its spelling (as --distill of the
  TypeScript engine).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from .job import OBJECTIVES, JobError


def ce_loss(fwd, batch: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of one micro-batch (`fwd`: the model, or its DDP wrapper)."""
    return fwd(input_ids=batch, labels=batch).loss


def new_token_pieces(model_dir: str, original_dir: str, new_ids: Sequence[int]) -> dict[int, list[int]]:
    """Each new id -> its original ids: an added token's text encoded by the original tokenizer, a merged token's
    vocabulary string split by the original BPE model (no pre-tokenization: the string is one word already)."""
    from tokenizers import Tokenizer

    ext = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    orig = Tokenizer.from_file(os.path.join(original_dir, "tokenizer.json"))
    added = {i: t.content for i, t in ext.get_added_tokens_decoder().items()}
    strings = {i: s for s, i in ext.get_vocab(with_added_tokens=False).items()}
    new = set(new_ids)
    out: dict[int, list[int]] = {}
    for i in new_ids:
        if i in added:
            pieces = orig.encode(added[i], add_special_tokens=False).ids
        elif i in strings:
            pieces = [t.id for t in orig.model.tokenize(strings[i])]
        else:
            raise JobError("new_ids", f"token id {i} is not in {model_dir}/tokenizer.json")
        if not pieces or any(p in new for p in pieces):
            raise JobError("original", f"new token {i} ({(added.get(i) or strings.get(i))!r}) has no split into original tokens")
        out[i] = pieces
    return out


def expand(ids: Sequence[int], pieces: dict[int, list[int]]) -> tuple[list[int], list[int]]:
    """The original's ids for one window, and for each window position the position of its token's last piece."""
    t_ids: list[int] = []
    last: list[int] = []
    for i in ids:
        t_ids.extend(pieces.get(i, (i,)))
        last.append(len(t_ids) - 1)
    return t_ids, last


def _teacher_batch(batch: torch.Tensor, pieces: dict[int, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Expanded windows, right-padded with id 0 (causal attention: padding after a position does not change it),
    and [B, L] positions of the last pieces."""
    rows = [expand(r, pieces) for r in batch.tolist()]
    width = max(len(t) for t, _ in rows)
    t_ids = torch.zeros(len(rows), width, dtype=torch.long)
    for b, (t, _) in enumerate(rows):
        t_ids[b, : len(t)] = torch.tensor(t, dtype=torch.long)
    return t_ids.to(batch.device), torch.tensor([last for _, last in rows], dtype=torch.long, device=batch.device)


def distill_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """[B, L, H] student states, [B, Lt, H] teacher states, [B, L] teacher positions -> the mean squared difference."""
    target = torch.gather(teacher_hidden, 1, last.unsqueeze(-1).expand(-1, -1, teacher_hidden.shape[-1]))
    return torch.nn.functional.mse_loss(student_hidden.float(), target.float().detach())


def alm_targets(teacher_logp: torch.Tensor, batch: torch.Tensor, last: torch.Tensor,
                pieces: dict[int, list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each (b, i) whose next token n = batch[b, i + 1] is new: T = sum over n's pieces p_j of the teacher's
    log p(p_j) at the position before p_j (the pieces start right after the teacher position last[b, i]).
    Returns index tensors b, i, n and the targets T."""
    bs, ps, ns, ts = [], [], [], []
    ids = batch.tolist()
    for b, row in enumerate(ids):
        for i in range(len(row) - 1):
            p = pieces.get(row[i + 1])
            if p is None:
                continue
            a = int(last[b, i])
            pos = torch.arange(a, a + len(p), device=teacher_logp.device)
            ts.append(teacher_logp[b, pos, torch.tensor(p, device=teacher_logp.device)].sum())
            bs.append(b)
            ps.append(i)
            ns.append(row[i + 1])
    dev = batch.device
    t = torch.stack(ts) if ts else torch.zeros(0, device=dev)
    return (torch.tensor(bs, dtype=torch.long, device=dev), torch.tensor(ps, dtype=torch.long, device=dev),
            torch.tensor(ns, dtype=torch.long, device=dev), t)


class Objective:
    """The loss of one micro-batch for a stage's objective (`fwd` is the model, or its DDP wrapper for ce)."""

    def __init__(self, name: str, model, pieces: dict[int, list[int]]):
        if name not in OBJECTIVES:
            raise JobError("objective", f"expected one of {', '.join(OBJECTIVES)}, got {name!r}")
        self.name, self.model, self.pieces = name, model, pieces
        self.new_ids = torch.tensor(sorted(pieces), dtype=torch.long)

    def __call__(self, fwd, batch: torch.Tensor) -> torch.Tensor:
        if self.name == "ce":
            return ce_loss(fwd, batch)
        t_ids, last = _teacher_batch(batch, self.pieces)
        if self.name == "distill":
            decoder = self.model.get_decoder()
            with torch.no_grad():
                teacher = decoder(input_ids=t_ids).last_hidden_state
            return distill_loss(decoder(input_ids=batch).last_hidden_state, teacher, last)
        with torch.no_grad():
            tl = self.model(input_ids=t_ids).logits.float()
            tl[..., self.new_ids.to(tl.device)] = float("-inf")  # the original's softmax: old tokens only
            logp = torch.log_softmax(tl, dim=-1)
            b, i, n, target = alm_targets(logp, batch, last, self.pieces)
        out = fwd(input_ids=batch, labels=batch)  # ce_loss's forward, with the logits kept
        if target.numel() == 0:
            return out.loss
        lp = torch.log_softmax(out.logits[b, i].float(), dim=-1).gather(1, n.unsqueeze(1)).squeeze(1)
        return out.loss + ((lp - target) ** 2).mean()
