"""Property tests of the pipeline state: any valid state survives save -> load (and show -> set) unchanged; merging
flags is associative, agrees with applying them one after the other, and follows flags > saved > defaults."""
import dataclasses, json, tempfile, types
from datetime import timezone
from typing import Literal, Union, get_args, get_origin
from hypothesis import given, settings, strategies as st, HealthCheck
from nexus.state import (PipelineState, LADDER, SCHEMA_VERSION, save_state, load_state, state_keys, format_state,
                         parse_value, merge_flags, normalize_flags, apply_flags, resolve_state, StateValidationError)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,11}", fullmatch=True)
# any text, lone surrogates (undecodable file names) and control characters included
TEXT = st.text(st.characters(exclude_categories=()), min_size=1, max_size=30).filter(lambda s: s.strip())
FIELDS = {f.name: f for f in dataclasses.fields(PipelineState)}

def values(tp, meta):
    "A strategy for the valid values of a field of type `tp` with range `meta`, read from the schema itself."
    o, args = get_origin(tp), get_args(tp)
    if o in (Union, types.UnionType): return st.one_of(*[values(a, meta) for a in args])
    if tp is type(None): return st.none()
    if tp is bool: return st.booleans()
    if tp is int:
        lo = meta.get("ge") if meta.get("ge") is not None else (meta["gt"] + 1 if meta.get("gt") is not None else -2**53)
        return st.integers(lo, meta.get("le") if meta.get("le") is not None else 2**53)
    if tp is float:
        lo = meta.get("ge") if meta.get("ge") is not None else meta.get("gt")
        return st.floats(min_value=lo, max_value=meta.get("le"), exclude_min=meta.get("gt") is not None,
                         allow_nan=False, allow_infinity=False)
    if tp is str:
        if meta.get("iso"): return st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat())
        return TEXT
    if o is Literal: return st.sampled_from(args)
    if o is list: return st.lists(st.integers(0, 200) if args[0] is int else values(args[0], meta), unique=True, max_size=6)
    if o is dict: return st.dictionaries(NAMES, values(args[1], meta), max_size=4)
    if dataclasses.is_dataclass(tp): return st.fixed_dictionaries({f.name: values(f.type, f.metadata) for f in dataclasses.fields(tp)})
    raise TypeError(tp)

def make_consistent(d):
    "Repair what only fails across fields: expert tags, weights and the shrunk teacher must name teachers; some loss."
    d["schema_version"] = SCHEMA_VERSION
    names = list(d["teachers"])
    for ds in d["datasets"].values():
        if ds["expert"] not in names: ds["expert"] = None
    d["router"]["weights"] = {k: v for k, v in d["router"]["weights"].items() if k in names}
    if d["router"]["weights"] and not sum(d["router"]["weights"].values()) > 0: d["router"]["weights"][next(iter(d["router"]["weights"]))] = 1.0
    if d["student"]["teacher"] not in names or d["student"]["path"] is not None: d["student"]["teacher"] = None
    if not any(d["loss"][k] for k in ("logits_weight", "hidden_weight", "anchor_weight", "ce_weight")): d["loss"]["logits_weight"] = 1.0
    return d

def without_teacher_references(d):
    "For the flag tests: a layer may replace `teachers` whole, so the saved state must not name a teacher elsewhere."
    for ds in d["datasets"].values(): ds["expert"] = None
    d["router"]["weights"], d["student"]["teacher"] = {}, None
    return d

RAW = st.fixed_dictionaries({n: values(f.type, f.metadata) for n, f in FIELDS.items()}).map(make_consistent)
STATES = RAW.map(PipelineState.from_dict)
SAVED = RAW.map(without_teacher_references).map(PipelineState.from_dict)

@SETTINGS
@given(STATES)
def test_save_then_load_gives_the_same_state(state):
    with tempfile.TemporaryDirectory() as d:
        path = save_state(state, d)
        assert load_state(d) == state
        assert PipelineState.from_dict(json.loads(path.read_bytes())).to_dict() == state.to_dict()

@SETTINGS
@given(STATES)
def test_show_output_sets_the_same_state(state):
    "Every `KEY  VALUE` line of `nexus state show` can be pasted into `nexus state set` and means the same value."
    lines = format_state(state).splitlines()
    width = max(len(l.split()[0]) for l in lines)
    rebuilt = {}
    for line in lines:
        key, text = line[:width].strip(), line[width + 2:]
        ck, value = parse_value(key, text)
        *parents, last = ck.split(".")
        node = rebuilt
        for p in parents: node = node.setdefault(p, {})
        node[last] = value
    assert PipelineState.from_dict(rebuilt) == state

# flag layers: settings that stay valid in any combination (no cross-field references), so each layer can be applied alone
FLAG_KEYS = [k.key for k in state_keys() if k.flag and k.key not in ("datasets", "router.weights", "student.teacher")
             and not k.key.endswith("_weight")]
LEAF = {k.key: k for k in state_keys()}

def field_of(key):
    f, cls = None, PipelineState
    for p in key.split("."):
        f = {x.name: x for x in dataclasses.fields(cls)}[p]
        cls = f.type
    return f

LAYERS = st.dictionaries(st.sampled_from(FLAG_KEYS), st.nothing(), max_size=0) if not FLAG_KEYS else st.lists(
    st.sampled_from(FLAG_KEYS), unique=True, max_size=8).flatmap(
    lambda keys: st.fixed_dictionaries({k: values(field_of(k).type, field_of(k).metadata) for k in keys}))

@SETTINGS
@given(LAYERS, LAYERS, LAYERS)
def test_merging_flags_is_associative(a, b, c):
    assert merge_flags(merge_flags(a, b), c) == merge_flags(a, merge_flags(b, c))

@SETTINGS
@given(SAVED, LAYERS, LAYERS)
def test_merged_flags_equal_flags_applied_in_turn(saved, a, b):
    assert apply_flags(apply_flags(saved, a), b) == apply_flags(saved, merge_flags(a, b))

def flat(state):
    out = {}
    for k in LEAF:
        v = state.to_dict()
        for p in k.split("."): v = v[p]
        out[k] = v
    return out

@SETTINGS
@given(st.one_of(st.none(), SAVED), LAYERS)
def test_flags_beat_saved_beat_defaults(saved, flags):
    resolved = flat(resolve_state(saved, flags))
    given_now = normalize_flags(flags)
    base = flat(saved if saved is not None else PipelineState())
    for key, value in resolved.items():
        if key in given_now: assert value == given_now[key], key
        elif key == "hyper.sample_size" and "mode" in given_now: assert value == LADDER[given_now["mode"]]
        else: assert value == base[key], key
    if "mode" in given_now and "hyper.sample_size" not in flags and "sample_size" not in flags:
        assert resolved["hyper.sample_size"] == LADDER[resolved["mode"]]  # the ladder
