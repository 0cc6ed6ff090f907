"""Render nbs/index.ipynb to README.md (what `nbdev-readme` does with Quarto, which these machines can't install).

    python tools/readme.py          # write README.md
    python tools/readme.py --check  # exit 1 if README.md is not what index.ipynb renders to
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _hidden(src): return bool(re.search(r"^#\|\s*(hide|export|exporti|default_exp)\b", src, re.M))

def _outputs(cell):
    "The text a code cell showed: stdout and plain-text results (stderr, images and widgets have no place in a README)."
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == "stdout": out.append("".join(o.get("text", "")))
        elif "text/plain" in o.get("data", {}): out.append("".join(o["data"]["text/plain"]))
    return "".join(out).rstrip("\n")

def render(nb_path=ROOT / "nbs" / "index.ipynb") -> str:
    "Markdown of a notebook: markdown cells as they are, code cells as python blocks followed by their text output."
    cells, parts = json.loads(Path(nb_path).read_text())["cells"], []
    for c in cells:
        src = "".join(c["source"]).strip("\n")
        if c["cell_type"] == "markdown": parts.append(src)
        elif c["cell_type"] == "code" and src and not _hidden(src):
            code = "\n".join(l for l in src.splitlines() if not l.startswith("#|"))
            parts.append(f"```python\n{code}\n```")
            if (text := _outputs(c)): parts.append(f"```\n{text}\n```")
    return "<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n" + "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    want, readme = render(), ROOT / "README.md"
    if "--check" in sys.argv[1:]:
        if not readme.exists() or readme.read_text() != want:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python tools/readme.py` and commit it.")
    else: readme.write_text(want)
