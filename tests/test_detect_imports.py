"Detection must never import torch or transformers: checked in a fresh interpreter, on every category."
import json, os, subprocess, sys

PROBE = r'''
import json, sys
import nexus.detect as d
from nexus.detect import OmniModelLoader as L
folders = json.loads(sys.argv[1])
out = {}
for p in folders:
    info = d.get_model_info(p)
    d.detect_category(p); d.is_model_supported(p); L._is_sae_model(p); L._is_diffusers_model(p)
    L._is_vision_encoder(p); L._is_asr_model(p); L.is_omni_model(p); L._get_sae_base_model(p)
    out[p] = info["category"]
d.scan(sys.argv[2])
d.format_model_info(d.get_model_info(d.bundled_model_path("smollm2")))
import nexus.cli
print(json.dumps({"categories": out, "heavy": sorted(m for m in ("torch", "transformers", "numpy", "diffusers") if m in sys.modules)}))
'''

def _probe(folders, root, cache_dir):
    env = {**os.environ, "NEXUS_CACHE_DIR": str(cache_dir)}
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps([str(f) for f in folders]), str(root)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])

def test_detection_imports_no_torch_or_transformers(registry, tmp_path):
    from nexus.fixtures import save_tiny_model
    folders = sorted(registry.iterdir()) + [save_tiny_model("wav2vec2", tmp_path / "wav2vec2", tokenizer=False)]
    # a fresh cache dir forces the architecture index to be built from transformers' sources: still no import
    res = _probe(folders, registry, tmp_path / "fresh-cache")
    assert res["heavy"] == []
    assert set(res["categories"].values()) == {"transformers", "vision_language", "vision_encoder", "audio_encoder", "asr", "diffusers", "sae"}
    assert list((tmp_path / "fresh-cache").glob("arch-index-*.json")), "the index was not cached"
    # and the cached index is used the second time
    assert _probe(folders, registry, tmp_path / "fresh-cache")["heavy"] == []
