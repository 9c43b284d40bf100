"""The shape of the house: an acyclic, layered import graph, short modules and notes, one installed
namespace, a plugin that loads nothing, and one float64 reference pass per report.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lstm_gradcheck.implementation import reference_implementation
from lstm_gradcheck.reference import LSTMConfig, lstm, make_case
from lstm_gradcheck.report import build_report

ROOT = Path(__file__).resolve().parents[1]
#: Each installed subpackage and the repository folder it comes from (pyproject.toml).
FOLDERS = {
    "lstm_gradcheck.reference": ROOT / "reference",
    "lstm_gradcheck.oracles": ROOT / "oracles",
    "lstm_gradcheck.properties": ROOT / "properties",
    "lstm_gradcheck": ROOT / "lstm_gradcheck",
}
#: The layers, bottom first: a module may import from its own layer and those below.
LAYERS = ("lstm_gradcheck.reference", "lstm_gradcheck.oracles", "lstm_gradcheck.properties", "lstm_gradcheck")


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every project module ``path`` imports, anywhere in it (not the packages' own __init__)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        found |= {t for t in targets if t in known}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    known = set(modules)
    return {name: _imports(path, known) - packages - {name} for name, path in modules.items()}


def _layer(module: str) -> int:
    return next(k for k, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + "."))


def test_no_module_imports_in_a_cycle():
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def test_nothing_imports_upward():
    """reference -> oracles -> properties -> lstm_gradcheck: each layer imports only the ones below."""
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, upward


def _project_files() -> list[Path]:
    skip = {".git", ".ci-venv", ".venv", "build", "__pycache__"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in _project_files() if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


NOTE = re.compile(r"^(\s*#\s*)?Note \[(?P<name>[^\]]+)\]\s*$")


def _notes() -> dict[str, tuple[str, int]]:
    """Every note: its file and the lines of its body (its paragraph under the title and rule)."""
    out = {}
    for path in _project_files():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines[:-1]):
            match = NOTE.match(line)
            if not match or not re.match(r"^(\s*#\s*)?-{4,}\s*$", lines[i + 1]):
                continue
            body = 0
            for raw in lines[i + 2 :]:
                text = re.sub(r"^\s*#\s?", "", raw) if match.group(1) else raw
                if not text.strip() or text.strip().startswith('"""'):
                    break
                body += 1
            assert match["name"] not in out, f"two notes named {match['name']!r}"
            out[match["name"]] = (str(path.relative_to(ROOT)), body)
    return out


def test_notes_are_short_and_every_reference_names_one():
    notes = _notes()
    assert len(notes) >= 10
    long = {name: lines for name, (_, lines) in notes.items() if not 3 <= lines <= 8}
    assert not long, long
    texts = [p.read_text() for p in _project_files()] + [p.read_text() for p in ROOT.glob("*.md")]
    referenced = {re.sub(r"\s+", " ", m) for text in texts for m in re.findall(r"Note \[([^\]]+)\]", text)}
    assert referenced <= set(notes), sorted(referenced - set(notes))


def test_nothing_points_outside_the_repository():
    texts = {p: p.read_text() for p in [*_project_files(), *ROOT.glob("*.md"), *ROOT.glob("docs/*.md")]}
    # Spelled in pieces so that this file does not match itself.
    pointers = re.compile(r"\.\./" + "shared" + r"|(?i:\bissue" + r" \d)")
    outside = [str(p.relative_to(ROOT)) for p, text in texts.items() if pointers.search(text)]
    assert not outside, outside


def test_one_report_runs_the_float64_reference_once(monkeypatch):
    """The default report on the reference: its own answer is the exact one (Note [Judging context])."""
    case = make_case(LSTMConfig(), seed=0)
    exact_passes = []
    real = lstm.forward

    def counting(c, perturb=None):
        same = c.config.dtype == "float64" and all(
            np.array_equal(a, b) for a, b in zip(c.arrays().values(), case.arrays().values(), strict=True)
        )
        if perturb is None and same:
            exact_passes.append(c)
        return real(c, perturb)

    monkeypatch.setattr(lstm, "forward", counting)
    report = build_report(case, reference_implementation())
    assert report.verdict == "pass"
    assert {o.name for o in report.oracles} >= {"torch", "fd", "complex-step", "taylor", "directional"}
    assert len(exact_passes) == 1


def test_the_plugin_imports_nothing_of_the_harness_until_asked():
    code = (
        "import sys, lstm_gradcheck.pytest_plugin as p; "
        "print(sorted(m for m in sys.modules if m.startswith('lstm_gradcheck')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['lstm_gradcheck', 'lstm_gradcheck.pytest_plugin']"


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package_and_no_tests(tmp_path):
    # Built from a copy of what the package is made of, so the checkout gets no build/ folder.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for folder in ("lstm_gradcheck", *(p.name for p in FOLDERS.values() if p.name != "lstm_gradcheck")):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("lstm_gradcheck-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    # The console script goes to bin/; every importable top-level name must be ours.
    top = {p.name for p in site.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    assert top == {"lstm_gradcheck"}, top
    record = next(site.glob("lstm_gradcheck-*.dist-info")) / "RECORD"
    files = [line.split(",")[0] for line in record.read_text().splitlines()]
    assert not [f for f in files if re.search(r"(^|/)(test_[^/]*|conftest)\.py$", f) or f.startswith("bench/")]
    names = zipfile.ZipFile(wheel).namelist()
    assert "lstm_gradcheck/reference/lstm.py" in names and "lstm_gradcheck/oracles/registry.py" in names
    assert "lstm_gradcheck/py.typed" in names  # PEP 561
