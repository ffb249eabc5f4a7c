"""The distill / alm pieces (byte alignment, losses, chunk targets) and the job rules of `objective`."""
from __future__ import annotations

import math
import os

import pytest
import torch
from tokenizers import Tokenizer

from conftest import TINY, job
from hack_tokenizer_train.objectives import (align_positions, byte_ends, chunk_logprob_targets, distill_loss,
                                             token_byte_lengths)

TEXT = "A associação também"


def tokenizers(extended):
    return Tokenizer.from_file(os.path.join(extended, "tokenizer.json")), Tokenizer.from_file(os.path.join(TINY, "tokenizer.json"))


def test_byte_lengths_count_bytes_not_code_points(extended):
    student, teacher = tokenizers(extended)
    s_len, t_len = token_byte_lengths(student), token_byte_lengths(teacher)
    s_ids, t_ids = student.encode(TEXT).ids, teacher.encode(TEXT).ids
    n = len(TEXT.encode("utf-8"))
    assert n == len(TEXT) + 3  # "ç", "ã" and "é" are two bytes each
    assert byte_ends(s_ids, s_len)[-1] == n and byte_ends(t_ids, t_len)[-1] == n
    cao = student.token_to_id("ção")
    assert cao in s_ids and s_len[cao] == 5  # 3 code points, 5 bytes


def test_alignment_by_hand():
    # student "ab|ção" = teacher "ab|ç|ão": the merged token is matched with its last piece
    assert align_positions([2, 7], [2, 4, 7]) == [(0, 0), (1, 2)]
    # a student token ending inside a teacher token has no match
    assert align_positions([1, 3], [2, 3]) == [(1, 1)]


def test_alignment_on_the_real_tokenizers(extended):
    student, teacher = tokenizers(extended)
    s_ids, t_ids = student.encode(TEXT).ids, teacher.encode(TEXT).ids
    s_end, t_end = byte_ends(s_ids, token_byte_lengths(student)), byte_ends(t_ids, token_byte_lengths(teacher))
    pairs = align_positions(s_end, t_end)
    cao, i = student.token_to_id("ção"), s_ids.index(student.token_to_id("ção"))
    j = dict(pairs)[i]
    # both end just after "ção"; the teacher spells it with several byte-level pieces, the last one at j
    assert s_end[i] == t_end[j] and TEXT.encode("utf-8")[: s_end[i]].decode("utf-8") == "A associação"
    assert j > i and len(pairs) < len(t_ids)


def test_distill_loss_by_hand():
    s = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    t = torch.tensor([[0.0, 0.0], [9.0, 9.0], [1.0, 1.0]])
    # pairs (0,0) and (1,2): ((1+4) + (4+16)) / 4
    assert distill_loss(s, t, [(0, 0), (1, 2)]).item() == pytest.approx(25 / 4)


def test_distill_gradient_reaches_only_the_aligned_student_rows():
    s = torch.zeros(3, 2, requires_grad=True)
    distill_loss(s, torch.ones(3, 2), [(0, 0), (2, 2)]).backward()
    assert s.grad[1].abs().sum() == 0 and s.grad[0].abs().sum() > 0 and s.grad[2].abs().sum() > 0


def test_chunk_target_is_the_sum_of_the_teacher_piece_logprobs():
    # teacher: ids [5, 1, 2] ending at bytes [1, 2, 4]; student: [5, 9] ending at [1, 4], 9 new = pieces 1, 2
    torch.manual_seed(0)
    logits = torch.randn(3, 6)
    lp = torch.log_softmax(logits, dim=-1)
    got = chunk_logprob_targets(logits, [5, 1, 2], [1, 4], [1, 2, 4], {9}, [5, 9])
    assert len(got) == 1 and got[0][:2] == (0, 9)
    assert got[0][2] == pytest.approx(float(lp[0, 1] + lp[1, 2]), abs=1e-6)
    assert not math.isclose(got[0][2], float(lp[0, 1]), abs_tol=1e-6)  # both pieces counted, not just the first


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
    with pytest.raises(JobError, match="does not compute it yet") as e:
        job(**base, original=TINY, objective="distill")
    assert e.value.code == "NOT_TRAINED"
    assert not os.path.exists(tmp_path / "o") and not os.path.exists(tmp_path / "w")
