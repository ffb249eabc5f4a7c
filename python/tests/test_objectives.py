"""The objectives (ce, distill, alm): the original's view of a window, the losses by hand, the job rules, and
training with each (old rows bit-identical, the new rows moved, the loss going down)."""
from __future__ import annotations

import os

import pytest
import torch
from tokenizers import Tokenizer

from conftest import TINY, job, run
from hack_tokenizer_train.objectives import alm_targets, distill_loss, expand, new_token_pieces
from test_train import tensors

TEXT = "A associação também sobre os deputados"
OLD = 8192


def test_expanding_the_window_gives_the_original_tokenization(extended):
    student = Tokenizer.from_file(os.path.join(extended, "tokenizer.json"))
    teacher = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))
    new_ids = list(range(OLD, student.get_vocab_size()))
    pieces = new_token_pieces(extended, TINY, new_ids)
    s_enc, t_enc = student.encode(TEXT), teacher.encode(TEXT)
    s_ids, t_ids = s_enc.ids, t_enc.ids
    assert sum(i >= OLD for i in s_ids) >= 3
    got, last = expand(s_ids, pieces)
    assert got == t_ids
    # each position is matched with its token's last piece: both end at the same character of the text
    assert len(last) == len(s_ids) and last[-1] == len(t_ids) - 1
    for i, j in enumerate(last):
        assert s_enc.offsets[i][1] == t_enc.offsets[j][1], (i, j)


def test_pieces_of_merged_tokens_split_by_the_original_bpe(tmp_path):
    # a merges-mode token lives in the vocabulary (not an added token): its string is split by the original model
    tok = Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))
    d = tmp_path / "m"
    d.mkdir()
    import json
    data = json.loads(tok.to_str())
    a, b = tok.encode(" os deputados").tokens[2:4]  # the original's first two pieces of " deputados", merged
    data["model"]["vocab"][a + b] = OLD
    data["model"]["merges"].append([a, b] if isinstance(data["model"]["merges"][0], list) else f"{a} {b}")
    (d / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    pieces = new_token_pieces(str(d), TINY, [OLD])
    assert pieces == {OLD: [data["model"]["vocab"][a], data["model"]["vocab"][b]]}
    ext = Tokenizer.from_file(str(d / "tokenizer.json"))
    s_ids = ext.encode(" os deputados").ids
    assert OLD in s_ids and expand(s_ids, pieces)[0] == tok.encode(" os deputados").ids


def test_distill_loss_by_hand():
    s = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    t = torch.tensor([[[0.0, 0.0], [9.0, 9.0], [1.0, 1.0]]])
    # positions 0 -> 0 and 1 -> 2: ((1+4) + (4+16)) / 4
    assert distill_loss(s, t, torch.tensor([[0, 2]])).item() == pytest.approx(25 / 4)


def test_alm_target_is_the_sum_of_the_teacher_piece_logprobs():
    # student [5, 9], 9 new = pieces 1, 2; teacher [5, 1, 2]: token 5 is at teacher position 0
    torch.manual_seed(0)
    lp = torch.log_softmax(torch.randn(1, 3, 6), dim=-1)
    b, i, n, t = alm_targets(lp, torch.tensor([[5, 9]]), torch.tensor([[0, 2]]), {9: [1, 2]})
    assert b.tolist() == [0] and i.tolist() == [0] and n.tolist() == [9]
    assert float(t[0]) == pytest.approx(float(lp[0, 0, 1] + lp[0, 1, 2]), abs=1e-6)


def test_objective_job_rules(tmp_path, pt_corpus, extended):
    from hack_tokenizer_train.job import JobError

    base = dict(model=extended, out=str(tmp_path / "o"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"))
    assert job(**base, original=TINY).plan[0].objective == "ce"
    with pytest.raises(JobError, match="expected one of ce, distill, alm") as e:
        job(**base, original=TINY, objective="kl")
    assert e.value.key == "objective"
    with pytest.raises(JobError, match="use recipe rows") as e:
        job(**base, original=TINY, stages=[{"recipe": "full", "objective": "distill"}])
    assert e.value.key == "stages[0].objective"
    with pytest.raises(JobError, match="teacher") as e:
        job(**base, new_ids=[8192], objective="alm")
    assert e.value.key == "original"
    with pytest.raises(JobError, match="put it before any non-rows stage") as e:
        job(**base, original=TINY, stages=[{"recipe": "embeddings"}, {"recipe": "rows", "objective": "alm"}])
    assert e.value.key == "stages[1].objective"
    assert job(**base, original=TINY, stages=[{"recipe": "rows", "objective": "distill"}, {"recipe": "full"}]).plan[0].objective == "distill"
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "w")


@pytest.mark.parametrize("objective", ["distill", "alm"])
@pytest.mark.parametrize("tied", [True, False])
def test_training_with_an_objective_moves_only_new_rows(tmp_path, pt_corpus, extended, extended_untied, objective, tied):
    model = extended if tied else extended_untied
    events: list = []
    j = job(model=model, original=TINY, out=str(tmp_path / "o"), corpus=[pt_corpus], work_dir=str(tmp_path / "w"),
            recipe="rows", objective=objective, lr=1e-2, max_steps=6)
    summary = run(j, events)
    before, after = tensors(model), tensors(str(tmp_path / "o"))
    for name, w in before.items():
        if w.ndim == 2 and w.shape[0] > OLD:
            assert torch.equal(w[:OLD], after[name][:OLD]), name  # old rows: the same bits
        else:
            assert torch.equal(w, after[name]), name  # the body: untouched
    emb = next(n for n in before if "embed_tokens" in n)
    assert not torch.equal(before[emb][OLD:], after[emb][OLD:])
    losses = summary["stages"][0]["losses"]
    assert summary["stages"][0]["objective"] == objective and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    if objective == "distill" and not tied:
        head = next(n for n in before if "lm_head" in n)
        assert torch.equal(before[head], after[head])  # distill does not reach the output matrix
