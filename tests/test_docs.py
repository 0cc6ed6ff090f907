"""The docs: the notebook processing of the docs build succeeds on every notebook, and every example on a module page
or tutorial shows its output (the site renders the outputs saved in the notebooks; an example without one is a page
of code with no result).

`nbdev-proc-nbs` itself first insists on a Quarto binary, which these machines can't download (it comes from GitHub
releases), so the processing step is run through `nbdev.quarto.proc_nbs`; the deploy workflow installs Quarto and
renders the site."""
import ast, json, os, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb")) + sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb"))
# Cells the docs don't show as examples: exported definitions, hidden cells, cells the docs build doesn't run, and
# `gpu` cells (they run only on a GPU machine; their page says so).
NOT_EXAMPLES = {"export", "exports", "exporti", "hide", "default_exp", "eval: false", "gpu"}
TEST_CALL = re.compile(r"^(test_\w*|test|assert\w*|expect_fail)$")


def test_notebooks_process_for_the_docs():
    code = ("import warnings, nbdev.quarto as q; warnings.simplefilter('ignore'); from nbdev.config import get_config; "
            "print(q.proc_nbs(get_config().nbs_path))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=1200,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    proc = Path(r.stdout.strip().splitlines()[-1])
    for nb in (ROOT / "nbs").glob("*.ipynb"): assert (proc / nb.name).exists(), nb.name


def directives(source) -> set:
    "The `#| ...` directives of a cell, as written after the bar (`export`, `hide`, `eval: false`, ...)."
    return {line[2:].strip() for line in source.splitlines() if line.startswith("#|")}


def last_statement(source):
    "The cell's last top-level statement, or None when the cell is not plain Python (magics, shell lines)."
    code = "\n".join(l for l in source.splitlines() if not l.startswith(("#|", "%", "!")))
    try: body = ast.parse(code).body
    except SyntaxError: return None
    return body[-1] if body else None


def is_example(source) -> bool:
    "A shown cell whose last line is an expression to look at: not a definition, an assignment or a test call."
    if directives(source) & NOT_EXAMPLES: return False
    last = last_statement(source)
    if not isinstance(last, ast.Expr): return False
    call = last.value
    if isinstance(call, ast.Call):
        name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
        if TEST_CALL.match(name): return False
    return True


def examples_without_output(path) -> list[str]:
    "First lines of the example cells of a notebook that have no saved output, or whose output is an error."
    cells = json.loads(Path(path).read_text())["cells"]
    bad = []
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] != "code" or not is_example(src): continue
        outs = c.get("outputs") or []
        if not outs or any(o.get("output_type") == "error" for o in outs):
            bad.append(next(l for l in src.splitlines() if not l.startswith("#|"))[:80])
    return bad


def test_the_rule_itself():
    assert is_example("x = 1\nx") and is_example("#| slow\nprint(3)") and is_example("plot(x);")
    assert not is_example("#| export\ndef f(): pass") and not is_example("test_eq(1, 1)") and not is_example("x = 2")
    assert not is_example("#| hide\nx") and not is_example("%timeit f()") and not is_example("#| gpu\nx")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_examples_show_their_output(nb):
    bad = examples_without_output(nb)
    assert not bad, (f"{nb.relative_to(ROOT)}: {len(bad)} example cell(s) show no output on the docs page: {bad}. Run the "
                     f"notebook and keep its outputs (`nbdev-test --flags slow --save {nb.relative_to(ROOT)}`, then "
                     "`nbdev-clean`), or end the cell with the value it is about.")
