"""One optimizer step of distillation on fixed data; saves the logged loss components and the gradients.

    python tests/distill_grads.py OUT BATCH ACCUM              # single process
    torchrun --nproc_per_node 2 tests/distill_grads.py OUT BATCH ACCUM
The 8 samples have different lengths (padding), so each micro-batch holds a different number of tokens."""
import os, sys, tempfile, torch, transformers
transformers.utils.logging.disable_progress_bar(); transformers.logging.set_verbosity_error()
from nexus.trainer import DistillationTrainer, make_student
from nexus.fixtures import tiny_model
from nexus.losses import DistillationLoss, DistillConfig
from nexus.data import DistillCollator

out, batch, accum = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
teacher = tiny_model("llama", num_hidden_layers=4)
student = make_student(teacher, 2, method="every_k")
g = torch.Generator().manual_seed(1)
items = []
for i in range(8):
    ids = torch.randint(3, 320, (6 + (i * 5) % 11,), generator=g).tolist()
    items.append({"input_ids": ids, "labels": ids, "expert": "t"})
loss = DistillationLoss(DistillConfig(hidden_weight=1.0, ce_weight=0.5, critical_layers=[3]), student=student, teachers={"t": teacher})

class Grads(transformers.TrainerCallback):
    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

grab = Grads()
args = transformers.TrainingArguments(
    output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, gradient_accumulation_steps=accum, max_steps=1,
    learning_rate=1e-3, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    remove_unused_columns=False, ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", 1)) > 1 else None,
    ddp_find_unused_parameters=False)
tr = DistillationTrainer(student=student, teachers={"t": teacher}, distill_loss=loss, args=args, train_dataset=items,
                         data_collator=DistillCollator(pad_token_id=0, experts=["t"]), callbacks=[grab])
tr.train()
if tr.args.process_index == 0: torch.save({"loss": tr.component_history[0], "grads": grab.grads}, out)
if torch.distributed.is_initialized(): torch.distributed.barrier(); torch.distributed.destroy_process_group()
