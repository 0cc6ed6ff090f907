"""Run `run_distillation` from the command line, for tests that need a separate process (signals, torchrun).

    python tests/distill_run.py RUN_DIR '{"teachers": {...}, ...}'      # a first run with these flags
    python tests/distill_run.py RUN_DIR --resume ['{"max_steps": 6}']  # resume (flags optional)
Exits with the run's exit code (0, or 130/143 after SIGINT/SIGTERM)."""
import json, os, sys, time
import transformers
transformers.utils.logging.disable_progress_bar(); transformers.logging.set_verbosity_error()
import nexus.pipeline
from nexus.pipeline import run_distillation

if os.environ.get("DISTILL_RUN_SETUP_SECONDS"):  # tests: a setup slow enough for a signal to land in it
    _build = nexus.pipeline.build_training_data
    def _slow_build(*args, **kw):
        time.sleep(float(os.environ["DISTILL_RUN_SETUP_SECONDS"]))
        return _build(*args, **kw)
    nexus.pipeline.build_training_data = _slow_build

if __name__ == "__main__":
    run_dir, rest = sys.argv[1], sys.argv[2:]
    resume = "--resume" in rest
    flags = json.loads(next((a for a in rest if a != "--resume"), "{}"))
    sys.exit(run_distillation(run_dir, flags, resume=resume).exit_code)
