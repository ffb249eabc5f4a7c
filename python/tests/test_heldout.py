"""Held-out bits/byte along a run: the windows score every token once, the value is the summed NLL of a plain
forward, points land where asked, survive a resume, and an interrupted run's curve equals an uninterrupted one's."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch
from tokenizers import Tokenizer

from conftest import PT_TEXT, TINY, job, run
from hack_tokenizer_train.heldout import bits_per_byte, load_heldout, scoring_windows


def heldout_file(tmp_path, texts: dict[str, str]) -> str:
    tok = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))
    data = [{"name": k, "file": None, "bytes": len(v.encode("utf-8")), "ids": tok.encode(v, add_special_tokens=False).ids} for k, v in texts.items()]
    p = tmp_path / "heldout.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    return str(p)


def test_windows_score_every_token_but_the_first_once():
    for n, c in [(2, 512), (513, 512), (514, 512), (1100, 512), (7, 3)]:
        w = scoring_windows(n, c)
        scored = [t for s, e in w for t in range(s + 1, e)]
        assert scored == list(range(1, n)), (n, c, w)
        assert all(e - s <= c + 1 for s, e in w)


def test_bits_per_byte_is_the_summed_nll_of_a_plain_forward():
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    tok = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))
    text = PT_TEXT * 12  # ~1,200 tokens: three windows, the last short
    ids = torch.tensor(tok.encode(text, add_special_tokens=False).ids)
    assert ids.numel() > 2 * 512 + 2
    nbytes = len(text.encode("utf-8"))
    got = bits_per_byte(m, ids, nbytes, torch.device("cpu"))
    # by hand: each window on its own, one at a time
    nats = 0.0
    with torch.no_grad():
        for s in range(0, ids.numel() - 1, 512):
            x = ids[s:s + 513][None]
            lp = torch.log_softmax(m(input_ids=x).logits[0, :-1].double(), -1)
            nats -= lp[torch.arange(x.shape[1] - 1), x[0, 1:]].sum().item()
    assert abs(got - nats / math.log(2) / nbytes) < 1e-5  # float32 log-softmax against float64
    assert m.training is False  # from_pretrained returns eval mode; bits_per_byte restores what it found


def test_points_where_asked_and_resume_keeps_the_curve(tmp_path, pt_corpus):
    from hack_tokenizer_train.train import Interrupted

    h = heldout_file(tmp_path, {"pt": PT_TEXT * 3, "en": "The committee met on Tuesday and agreed on the budget for next year. " * 6})
    # 2 stages; a step is 2 x 32 = 64 tokens; a point every 128 tokens, before training and after each stage
    common = dict(model=TINY, corpus=[pt_corpus], heldout=h, eval_every=128, save_dtype="float32",
                  stages=[{"recipe": "embeddings", "lr": 1e-3, "max_steps": 3}, {"recipe": "full", "lr": 3e-4, "max_steps": 4}])
    events: list = []
    a = run(job(out=str(tmp_path / "a"), work_dir=str(tmp_path / "wa"), **common), events)
    pts = [(e["stage"], e["step"], e["tokens"]) for e in a["evals"]]
    assert pts == [(0, 0, 0), (0, 2, 128), (0, 3, 192), (1, 1, 256), (1, 3, 384), (1, 4, 448)], pts
    assert [e for e in events if e.get("event") == "eval"] == [{"event": "eval", **e} for e in a["evals"]]
    assert all(set(e["bpb"]) == {"pt", "en"} and all(0 < v < 20 for v in e["bpb"].values()) for e in a["evals"])
    assert a["evals"][-1]["bpb"]["pt"] < a["evals"][0]["bpb"]["pt"]  # repeated text: PT falls
    # corpus tokens: no replay here, so all of them; bytes at the corpus's bytes per token
    assert [e["corpus_tokens"] for e in a["evals"]] == [e["tokens"] for e in a["evals"]]
    # the stage records exclude evaluation time, the points count training seconds only (non-decreasing)
    secs = [e["train_seconds"] for e in a["evals"]]
    assert secs == sorted(secs) and secs[-1] <= sum(s["seconds"] for s in a["stages"]) + 1e-6
    # interrupted in stage 2, resumed: the same points with the same values
    with pytest.raises(Interrupted):
        run(job(out=str(tmp_path / "b"), work_dir=str(tmp_path / "wb"), stop_after_steps=5, **common))
    b = run(job(out=str(tmp_path / "b"), work_dir=str(tmp_path / "wb"), resume=True, **common))
    assert [(e["stage"], e["step"], e["tokens"]) for e in b["evals"]] == pts
    for ea, eb in zip(a["evals"], b["evals"]):
        assert ea["bpb"] == eb["bpb"], (ea, eb)


def test_bad_heldout(tmp_path, pt_corpus):
    from hack_tokenizer_train.job import JobError

    base = dict(model=TINY, out=str(tmp_path / "o"), work_dir=str(tmp_path / "w"), corpus=[pt_corpus], recipe="full")
    with pytest.raises(JobError, match="no held-out texts"):
        job(**base, eval_every=100)
    with pytest.raises(JobError, match="no such file"):
        job(**base, heldout=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "pt", "bytes": 10, "ids": [1]}]))
    with pytest.raises(JobError, match="at least two ids"):
        load_heldout(str(bad))
