"""Run `nexus cache` in a process of its own, for tests that need one (torchrun, a kill): shards of 64 tokens, so a
small build writes several, and with CACHE_BUILD_SECONDS a pause before each batch, so a kill lands mid-way.

    python tests/cache_build.py --output DIR --teachers ... [every flag of `nexus cache`]
    torchrun --nproc_per_node 2 tests/cache_build.py --output DIR ..."""
import functools, os, sys, time
import nexus.cache, nexus.pipeline
from nexus.cli import main

nexus.pipeline.build_cache = functools.partial(nexus.cache.build_cache, shard_tokens=64)
if os.environ.get("CACHE_BUILD_SECONDS"):
    _teach = nexus.cache._teach
    def _slow_teach(*args, **kw):
        time.sleep(float(os.environ["CACHE_BUILD_SECONDS"]))
        return _teach(*args, **kw)
    nexus.cache._teach = _slow_teach

if __name__ == "__main__": sys.exit(main(["cache", *sys.argv[1:]]))
