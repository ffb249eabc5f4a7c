"""Stages, gradient accumulation and replay in the PyTorch engine (demo model and its extended copies, one thread)."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import NEW_TOKENS, TINY, job, run
from test_train import tensors

OLD = 8192
NEW = list(range(OLD, OLD + len(NEW_TOKENS)))


def test_stage_errors_name_the_stage_and_key(tmp_path, pt_corpus):
    from hack_tokenizer_train.job import JobError

    base = dict(model=TINY, out=str(tmp_path / "o"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"))
    with pytest.raises(JobError, match="unknown stage key") as e:
        job(**base, stages=[{"recipe": "full"}, {"recipe": "full", "lrr": 1e-4}])
    assert e.value.key == "stages[1].lrr"
    with pytest.raises(JobError, match="expected one of rows, embeddings, lora, full") as e:
        job(**base, stages=[{"recipe": "everything"}])
    assert e.value.key == "stages[0].recipe"
    with pytest.raises(JobError, match="set per stage") as e:
        parse = __import__("hack_tokenizer_train.job", fromlist=["parse_job"]).parse_job
        parse({**base, "lr": 1e-3, "stages": [{"recipe": "full"}]})
    assert e.value.key == "lr"
    with pytest.raises(JobError, match="weight decay") as e:
        job(**base, original=TINY, stages=[{"recipe": "rows", "weight_decay": 0.1}])
    assert e.value.key == "stages[0].weight_decay"
    with pytest.raises(JobError, match="smaller than one batch") as e:
        # 2 windows x 2 micro-batches x 32 tokens = 128 tokens per step
        job(**base, stages=[{"recipe": "full", "max_tokens": 100, "grad_accum": 2}])
    assert e.value.key == "stages[0].max_tokens" and e.value.code == "BUDGET"
    with pytest.raises(JobError, match="no replay file") as e:
        job(**base, stages=[{"recipe": "full", "replay_ratio": 0.5}])
    assert e.value.key == "stages[0].replay_ratio"
    with pytest.raises(JobError, match="non-empty list"):
        job(**base, stages=[])
    with pytest.raises(JobError, match="no such file") as e:
        job(**base, replay=str(tmp_path / "missing.txt"), stages=[{"recipe": "full"}])
    assert e.value.key == "replay"
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "w")


def test_rows_then_full_across_a_resume(tmp_path, pt_corpus, extended):
    """Stage 1 rows keeps every old row bit-identical, stage 2 full changes them; a run interrupted between the
    stages and resumed ends with the weights of an uninterrupted one."""
    from hack_tokenizer_train.train import Interrupted, checkpoint_path

    stages = [{"recipe": "rows", "lr": 1e-2, "max_steps": 2}, {"recipe": "full", "lr": 1e-3, "max_steps": 2, "weight_decay": 0.01}]
    common = dict(model=extended, original=TINY, corpus=[pt_corpus], stages=stages, save_dtype="float32")
    evs: list = []
    s = run(job(out=str(tmp_path / "a"), work_dir=str(tmp_path / "wa"), **common), evs)
    assert [(d["index"], d["recipe"], d["steps"], d["lr"]) for d in s["stages"]] == [(0, "rows", 2, 1e-2), (1, "full", 2, 1e-3)]
    assert s["steps"] == 4 and s["tokens"] == 4 * 2 * 32
    assert all(d["first_loss"] is not None and d["tokens_per_s"] > 0 and d["seconds"] > 0 for d in s["stages"])
    assert [(e["stage"], e["step"]) for e in evs if e["event"] == "step"] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    # each stage's curve: one loss per step, the same as the step events
    step_losses = [[e["loss"] for e in evs if e["event"] == "step" and e["stage"] == i] for i in (0, 1)]
    assert [d["losses"] for d in s["stages"]] == step_losses
    # interrupted after stage 1's two steps: the checkpoint is taken at the start of stage 2 and holds every weight
    wb = tmp_path / "wb"
    with pytest.raises(Interrupted):
        run(job(out=str(tmp_path / "b"), work_dir=str(wb), stop_after_steps=2, **common))
    ck = torch.load(checkpoint_path(job(out=str(tmp_path / "b"), work_dir=str(wb), **common)), weights_only=False)
    assert (ck["stage"], ck["step"], [d["recipe"] for d in ck["done"]]) == (1, 0, ["rows"])
    before = {k: v.float() for k, v in tensors(extended).items()}
    emb = ck["params"]["model.embed_tokens.weight"]
    assert torch.equal(emb[:OLD], before["model.embed_tokens.weight"][:OLD])  # old rows bit-identical after stage 1
    assert not torch.equal(emb[NEW], before["model.embed_tokens.weight"][NEW])
    k = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(ck["params"][k], before[k])
    s2 = run(job(out=str(tmp_path / "b"), work_dir=str(wb), resume=True, **common))
    assert [d["resumed_at"] for d in s2["stages"]] == [None, None] and len(s2["stages"]) == 2
    # and interrupted in the middle of stage 2 (its optimizer state and schedule restored too)
    wc = tmp_path / "wc"
    with pytest.raises(Interrupted):
        run(job(out=str(tmp_path / "c"), work_dir=str(wc), stop_after_steps=3, **common))
    s3 = run(job(out=str(tmp_path / "c"), work_dir=str(wc), resume=True, **common))
    assert [d["resumed_at"] for d in s3["stages"]] == [None, 1]
    assert [d["first_loss"] for d in s3["stages"]] == [d["first_loss"] for d in s["stages"]]
    assert [len(d["losses"]) for d in s3["stages"]] == [2, 2]  # the resumed stage keeps its checkpointed step
    tc = tensors(str(tmp_path / "c"))
    ta, tb = tensors(str(tmp_path / "a")), tensors(str(tmp_path / "b"))
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key
        assert torch.equal(ta[key], tc[key]), key
    # stage 2 (full) moved the old rows and the rest of the network
    assert not torch.equal(ta["model.embed_tokens.weight"][:OLD], before["model.embed_tokens.weight"][:OLD])
    assert not torch.equal(ta[k], before[k])
    # a changed stage is named in the refusal
    from hack_tokenizer_train.job import JobError

    with pytest.raises(JobError, match=r"differs in: stages\[1\]\.lr"):
        run(job(out=str(tmp_path / "d"), work_dir=str(wb), resume=True, **{**common, "stages": [stages[0], {**stages[1], "lr": 2e-3}]}))


def test_grad_accum_equals_a_bigger_batch(tmp_path, pt_corpus):
    from transformers import AutoModelForCausalLM

    from hack_tokenizer_train.data import token_windows
    from hack_tokenizer_train.train import accumulate

    windows, _ = token_windows(TINY, [pt_corpus], 32, None)
    w = windows[:2]

    def grads(micro):
        torch.manual_seed(0)
        m = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32, attn_implementation="eager")
        m.train()
        loss = accumulate(m, micro)
        return loss, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    la, ga = grads([w[:1], w[1:]])  # 2 micro-batches of 1 window
    lb, gb = grads([w])  # 1 batch of 2
    assert abs(la - lb) < 1e-5, (la, lb)
    assert ga.keys() == gb.keys()
    for n in ga:
        assert torch.allclose(ga[n], gb[n], rtol=1e-4, atol=1e-6), n
    # and through the whole loop: the same windows, the same first loss, the same budget in tokens
    a = run(job(model=TINY, out=str(tmp_path / "a"), corpus=[pt_corpus], work_dir=str(tmp_path / "wa"), recipe="full", lr=1e-4, max_steps=2, batch_size=1, grad_accum=2))
    b = run(job(model=TINY, out=str(tmp_path / "b"), corpus=[pt_corpus], work_dir=str(tmp_path / "wb"), recipe="full", lr=1e-4, max_steps=2, batch_size=2, grad_accum=1))
    assert abs(a["first_loss"] - b["first_loss"]) < 1e-5 and a["tokens"] == b["tokens"] == 2 * 2 * 32
    assert abs(a["last_loss"] - b["last_loss"]) < 1e-3


def test_replay_mix(tmp_path, pt_corpus):
    from hack_tokenizer_train.data import replay_fraction, visit

    # 0.25 replay windows per corpus window: every fifth window, evenly spread
    f = replay_fraction(0.25)
    picks = [visit(k, f) for k in range(100)]
    assert sum(r for r, _ in picks) == 20
    assert [k for k, (r, _) in enumerate(picks) if r][:4] == [4, 9, 14, 19]
    # each stream is walked in order: replay indices 0, 1, 2...; corpus indices skip none
    assert [i for r, i in picks if r] == list(range(20)) and [i for r, i in picks if not r] == list(range(80))
    assert visit(7, 0.0) == (False, 7)
    replay = tmp_path / "en.txt"
    replay.write_text("The quick brown fox jumps over the lazy dog, and the dog sleeps on.\n" * 60, encoding="utf-8")
    s = run(job(model=TINY, out=str(tmp_path / "o"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"), replay=str(replay), replay_ratio=1.0,
                stages=[{"recipe": "embeddings", "lr": 1e-3, "max_steps": 2, "replay_ratio": 0.0}, {"recipe": "full", "lr": 1e-4, "max_steps": 4}]))
    assert [d["replay_ratio"] for d in s["stages"]] == [0.0, 1.0]
    # 4 steps x 2 windows, half of them replay
    assert [d["replay_windows"] for d in s["stages"]] == [0, 4]
    assert s["replay"]["tokens"] > 0 and s["replay"]["file"] == str(replay)


def test_lora_stage_is_merged_before_the_next(tmp_path, pt_corpus, extended):
    from transformers import AutoModelForCausalLM

    out = str(tmp_path / "o")
    s = run(job(model=extended, original=TINY, out=out, corpus=[pt_corpus], work_dir=str(tmp_path / "w"), save_dtype="float32",
                stages=[{"recipe": "lora", "lr": 5e-3, "max_steps": 2, "lora_r": 4}, {"recipe": "embeddings", "lr": 1e-3, "max_steps": 1}]))
    assert [d["recipe"] for d in s["stages"]] == ["lora", "embeddings"]
    # the adapter's base would be no model on disk: only the merged weights are written
    assert not os.path.exists(os.path.join(out, "adapter"))
    m = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in m.named_parameters())
    before, after = tensors(extended), tensors(out)
    assert sorted(before) == sorted(after)
    k = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[k].float(), after[k])  # the merged adapter changed the projection


def test_one_stage_job_with_replay(tmp_path, pt_corpus):
    replay = tmp_path / "en.txt"
    replay.write_text("The quick brown fox jumps over the lazy dog, and the dog sleeps on.\n" * 60, encoding="utf-8")
    s = run(job(model=TINY, out=str(tmp_path / "o"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"), recipe="full", lr=1e-4,
                max_steps=3, batch_size=3, replay=str(replay), replay_ratio=0.5))
    # 9 windows, one in three replay
    assert [(d["replay_ratio"], d["replay_windows"]) for d in s["stages"]] == [(0.5, 3)]
