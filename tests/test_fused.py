"The trainer's fused path (`fused_loss`): the same loss and gradients as the full-logits path, no full logits made."
import warnings
import pytest, torch
from nexus.errors import NexusNotice
from nexus.fixtures import tiny_model
from nexus.losses import DistillationLoss, LogitHead
from nexus.trainer import DistillationTrainer, StudentWithLoss, TeacherPool, TeacherRouter


def batch(B=3, L=12, seed=0, experts=None):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 250, (B, L), generator=g)
    am = torch.ones_like(ids); am[1, 8:] = 0
    labels = ids.masked_fill(am == 0, -100); labels[0, :4] = -100
    out = {"input_ids": ids, "attention_mask": am, "labels": labels}
    if experts is not None: out["teacher_index"] = torch.tensor(experts)
    return out


def trainer(tmp_path, student, teachers, router_mode="dataset", **loss):
    from transformers import TrainingArguments
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    dl = DistillationLoss(critical_layers=None, **loss)
    pool = TeacherPool(teachers)
    return DistillationTrainer(student=student, teachers=pool, distill_loss=dl, args=args,
                               router=TeacherRouter(router_mode, pool.names))


def loss_and_grads(tr, inputs):
    tr.model.zero_grad()
    loss, res = tr.compute_loss(tr.model, inputs, return_outputs=True)
    loss.backward()
    return res.components, {n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None}


def assert_same(a, b, rtol=1e-5):
    (ca, ga), (cb, gb) = a, b
    assert list(ca) == list(cb)
    for k in cb: torch.testing.assert_close(ca[k], cb[k], rtol=rtol, atol=1e-6)
    assert sorted(ga) == sorted(gb)
    for k in gb:
        scale = float(gb[k].abs().max())
        assert float((ga[k] - gb[k]).abs().max()) <= rtol * max(scale, 1e-12), k


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("loss", [dict(ce_weight=0.2), dict(hidden_weight=1.0, divergence="jsd", temperature=2.0)])
def test_fused_trainer_matches_full(tmp_path, tied, loss):
    student = tiny_model("llama", seed=1, num_hidden_layers=2, tie_word_embeddings=tied)
    teacher = tiny_model("llama", seed=2, num_hidden_layers=4)
    inputs = batch()
    on = trainer(tmp_path / "on", student, {"t": teacher}, **loss)
    off = trainer(tmp_path / "off", student, {"t": teacher}, fused_loss=False, **loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NexusNotice)  # a tiny llama qualifies: no notice
        assert_same(loss_and_grads(on, inputs), loss_and_grads(off, inputs))
    assert on.model.fused.why == "" and on.teachers.fused["t"].why == ""
    assert off.model.fused.why is None  # never asked


def test_fused_never_makes_full_logits(tmp_path):
    student, teacher = tiny_model("llama", seed=1, num_hidden_layers=2), tiny_model("llama", seed=2)
    tr = trainer(tmp_path, student, {"t": teacher}, ce_weight=0.1)
    calls = []
    for m in (student, teacher): m.lm_head.register_forward_hook(lambda mod, a, o: calls.append(tuple(o.shape)))
    loss_and_grads(tr, batch())  # the first batch checks each model once, on the first sample's real tokens
    assert all(s[0] == 1 for s in calls) and len(calls) == 2
    calls.clear()
    loss_and_grads(tr, batch(seed=1))
    assert calls == []
    outs = tr._teacher_outputs(batch(), *tr.router.plan(batch()), False, True)
    assert isinstance(outs["t"], LogitHead) and outs["t"].hidden.shape == (3, 12, teacher.config.hidden_size)


@pytest.mark.parametrize("mode,experts", [("dataset", [1, 0, 1]), ("dataset", [0, -1, 1]), ("mixture", None),
                                          ("best_teacher", None)])
def test_fused_several_teachers(tmp_path, mode, experts):
    student = tiny_model("llama", seed=1, num_hidden_layers=2)
    teachers = {"a": tiny_model("llama", seed=2), "b": tiny_model("llama", seed=3, num_hidden_layers=3)}
    inputs = batch(experts=experts)
    on = trainer(tmp_path / "on", student, teachers, mode, ce_weight=0.2)
    off = trainer(tmp_path / "off", student, teachers, mode, fused_loss=False, ce_weight=0.2)
    assert_same(loss_and_grads(on, inputs), loss_and_grads(off, inputs))
    assert on.model.fused.why == ("" if mode != "best_teacher" else None)  # best_teacher needs the student's logits


def test_fallback_says_why_once(tmp_path):
    student = tiny_model("llama", seed=1, num_hidden_layers=2)
    teacher = tiny_model("llama", seed=2)
    student.config.final_logit_softcapping = 30.0  # llama ignores it, but a model that reads it would cap its logits
    on = trainer(tmp_path / "on", student, {"t": teacher})
    off = trainer(tmp_path / "off", student, {"t": teacher}, fused_loss=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = loss_and_grads(on, batch())
        loss_and_grads(on, batch(seed=1))
    notes = [str(w.message) for w in caught if w.category is NexusNotice]
    assert len(notes) == 1 and notes[0].startswith("the student's logits are made in full") and "softcapping" in notes[0]
    assert_same(a, loss_and_grads(off, batch()))
    assert on.teachers.fused["t"].why == ""  # the teacher still qualifies on its own
