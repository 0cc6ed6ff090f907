"""`tests/distill_run.py` with accelerate's FSDP forced on for a CPU (gloo) run, for the FSDP2 tests.

    ACCELERATE_USE_FSDP=true FSDP_VERSION=2 torchrun --nproc_per_node 2 tests/fsdp_cpu_run.py RUN_DIR FLAGS_JSON
accelerate turns FSDP on only for runs on an accelerator: on the CPU it keeps MULTI_CPU (DDP) and drops the FSDP
plugin made from the environment. This shim (tests only) keeps the plugin and sets the distributed type to FSDP, as
accelerate sets it for a GPU run. Before the run's final save, the main process writes RUN_DIR/fsdp.json: which of
the student's modules are FSDP shard groups, and whether the teachers were sharded or trained."""
import json, os, runpy, sys
from pathlib import Path
import accelerate.state as AS
from accelerate.utils import DistributedType

_init = AS.AcceleratorState.__init__
def _init_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kw):
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kw)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, fsdp_plugin
        # as accelerate does on a GPU: a later `AcceleratorState()` copies the partial state's type back
        AS.PartialState._shared_state["distributed_type"] = DistributedType.FSDP
AS.AcceleratorState.__init__ = _init_fsdp_on_cpu

import nexus.pipeline
from nexus.trainer import is_sharded
_finish = nexus.pipeline._finish
def _finish_noting_shards(result, student, tokenizer, teachers, heldout):
    from torch.distributed.fsdp import FSDPModule
    if int(os.environ.get("RANK", 0)) == 0:
        note = {"student_sharded": is_sharded(student),
                "groups": sorted(n for n, m in student.named_modules() if isinstance(m, FSDPModule)),
                "teachers": {n: {"sharded": is_sharded(t), "training": t.training} for n, t in teachers.items()}}
        (Path(result.run_dir) / "fsdp.json").write_text(json.dumps(note))
    return _finish(result, student, tokenizer, teachers, heldout)
nexus.pipeline._finish = _finish_noting_shards

if __name__ == "__main__":
    script = Path(__file__).with_name("distill_run.py")
    sys.argv = [str(script), *sys.argv[1:]]
    runpy.run_path(str(script), run_name="__main__")
