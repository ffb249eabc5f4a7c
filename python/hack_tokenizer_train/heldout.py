"""Bits per byte on held-out text during training, as `hack-tokenizer eval --metrics bpb` measures it.

The launcher tokenizes each held-out text once (the model's own tokenizer, no special tokens: the same ids as
`eval`) and writes {name, file, bytes, ids}; here the ids are cut into windows of context + 1 tokens that overlap
by one (window i scores tokens context*i+1 .. context*i+context given the earlier ones in it: src/eval/windows.ts),
and bpb = summed negative log-likelihood in bits / UTF-8 bytes of the text. float32, no autocast: the last point of
a run equals `eval` on the written model when that is saved in float32.
"""
from __future__ import annotations

import json
import math
from typing import Any

import torch

from .job import JobError

CONTEXT = 512
# logits of one forward batch stay under this many bytes (a 151K vocabulary gets batches of one window)
LOGIT_BYTES = 512 << 20


def load_heldout(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise JobError("heldout", f"{path}: cannot read the held-out texts ({e})")
    if not isinstance(data, list) or not data:
        raise JobError("heldout", f"{path}: expected a non-empty list of {{name, file, bytes, ids}}")
    out = []
    for i, t in enumerate(data):
        ok = isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("bytes"), int) and t["bytes"] > 0 \
            and isinstance(t.get("ids"), list) and len(t["ids"]) >= 2
        if not ok:
            raise JobError("heldout", f"{path}: entry {i} needs a name, bytes > 0 and at least two ids")
        out.append({"name": t["name"], "file": t.get("file"), "bytes": t["bytes"], "ids": torch.tensor(t["ids"], dtype=torch.long)})
    return out


def scoring_windows(n: int, context: int = CONTEXT) -> list[tuple[int, int]]:
    return [(s, min(s + context + 1, n)) for s in range(0, n - 1, context)]


@torch.no_grad()
def bits_per_byte(model, ids: torch.Tensor, nbytes: int, device: torch.device, context: int = CONTEXT) -> float:
    vocab = model.get_output_embeddings().weight.shape[0]
    batch = max(1, min(8, LOGIT_BYTES // (4 * (context + 1) * vocab)))
    windows = scoring_windows(ids.numel(), context)
    nats = 0.0
    was_training = model.training
    model.eval()
    try:
        # full windows in batches; the last, shorter one on its own
        full = [w for w in windows if w[1] - w[0] == context + 1]
        groups = [full[i:i + batch] for i in range(0, len(full), batch)] + [[w] for w in windows if w[1] - w[0] != context + 1]
        for g in groups:
            x = torch.stack([ids[s:e] for s, e in g]).to(device)
            logits = model(input_ids=x).logits.float()
            lp = torch.log_softmax(logits[:, :-1], dim=-1)
            nats -= lp.gather(-1, x[:, 1:, None]).double().sum().item()
    finally:
        model.train(was_training)
    return nats / math.log(2) / nbytes
