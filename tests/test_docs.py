"""Every shell command that README.md and docs/*.md show is checked here; so are the results page's generator
(:mod:`study.pages`), the links between the pages, the Makefile's Snakemake argument order, and that
no table of numbers is typed by hand outside a generated block.

The commands are the lines of the ```bash, ```sh, ```shell and ```console blocks (in a console block, the lines
that start with ``$ ``); a line ending in ``\\`` continues on the next, ``#`` starts a comment, and ``&&``
separates two commands. What the test does with each:

* ``snakemake ...`` -- a dry-run: ``-n`` is added if absent, and ``--snakefile`` / ``--directory`` point it at
  this repository's Snakefile with an empty working directory, so the whole DAG is planned. A target written
  after ``--configfile`` is an error in itself (Snakemake 9 reads it as one more config file).
* ``make TARGET ...`` -- ``make -n TARGET ...``: the recipe is printed, not run. ``make all`` and ``make test``
  themselves are what CI runs.
* Python commands -- ``python -m pkg.mod``, ``python script.py``, the ``tomogan-*`` console scripts and
  ``torchrun ... -m pkg.mod`` -- are **parse-checked**: the command's own argparse parser reads exactly the
  arguments shown and the command stops right after parsing, so a misspelt program, subcommand, flag, choice or
  value fails here while nothing is computed. The commands in :data:`RUN` are also **run as written** (exit
  status 0), in document order, in a scratch copy of the repository: the quick ones whose inputs ship with the
  repository or are placeholders. The others are parse-checked only because they train or measure for minutes
  (``tomogan-train``, ``tomogan-n2i train``, the benchmarks) or read a finished run's ``results/``
  (``study.pages``, ``bench/investigate_tomogan.py``).
* **Placeholders**: a name in angle brackets, e.g. ``<low-dose.h5>``, stands for the reader's own file. Each is
  replaced by a small fixture of the right kind (:data:`PLACEHOLDERS`); an unknown placeholder fails.
* Commands that cannot be checked here are listed in :data:`SKIPPED` with the reason. Any other command fails
  the test: a new kind of command needs a rule here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import importlib.util
import io
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from study import pages as results_page

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent

# Commands that cannot be checked here: prefix -> why.
SKIPPED = {
    "pip install": "installs packages into the environment that runs the tests",
    "conda env create": "needs conda and the network",
    "conda activate": "changes the calling shell's environment",
}

# Commands also run as written, in a scratch copy of the repository (exact text as the page shows it) -> why
# it is quick enough. Runs are in page order, so a command may use what an earlier one wrote.
RUN = {
    "tomogan-import-keras tomogan_core/weights/TomoGAN.h5 served/release.pt":
        "converts the released weights shipped in the repository, about a second",
    "tomogan-infer -ld <new-low-dose.h5> -model served/release.pt -o enhanced-release.h5 --grey255-from-input":
        "the served released model (written by the command above) on a small fixture volume",
    "python bench/estimate_cost.py --configfile config/paper.yaml --page docs/cluster.md":
        "plans the paper config's DAG and counts FLOPs on the meta device, nothing is computed (~10 s)",
}

# Placeholder -> kind of fixture file that replaces it.
PLACEHOLDERS = {
    "<low-dose.h5>": "volume",
    "<normal-dose.h5>": "volume",
    "<new-low-dose.h5>": "volume",
    "<projections.h5>": "projections",
    "<my-config.yaml>": "config-with-scan",
    "<override.yaml>": "config-override",
    "<scan.h5>": "name",  # a file the command writes, or a glob of the reader's files: only its name is needed
    "<proj_*.tif>": "name",
    "<flat_*.tif>": "name",
    "<dark_*.tif>": "name",
    "<angles.txt>": "name",
}

SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
PYTHON = {"python", "python3"}


@dataclass(frozen=True)
class Command:
    """One command shown in a page: where it is, its text as shown, and its words."""

    page: str
    line: int
    text: str
    argv: tuple

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{self.argv[0]}"


def extract_commands(path: Path) -> list:
    """The shell commands of a Markdown page's ```bash/sh/shell/console blocks, in page order."""
    commands, block, pending, first = [], None, "", 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^\s*```\s*([\w-]*)", line)
        if fence:
            block = (fence.group(1) or "text") if block is None else None
            continue
        if block not in SHELL_BLOCKS:
            continue
        if not pending:
            if block == "console" and not line.startswith("$ "):
                continue  # output
            line, first = (line[2:] if block == "console" else line), n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words, pending = shlex.split(pending + line, comments=True), ""
        part = []
        for w in [*words, "&&"]:  # one command per `&&`-separated part
            if w != "&&":
                part.append(w)
            elif part:
                commands.append(Command(path.relative_to(ROOT).as_posix(), first, " ".join(part), tuple(part)))
                part = []
    return commands


ALL = [c for page in PAGES for c in extract_commands(page)]


def kind(cmd: Command) -> str:
    """How a command is checked: skip, snakemake, make, python (parse-checked), or unknown."""
    if any(cmd.text == p or cmd.text.startswith(p + " ") for p in SKIPPED):
        return "skip"
    prog = cmd.argv[0]
    if prog == "snakemake":
        return "snakemake"
    if prog == "make":
        return "make"
    if prog.startswith("tomogan-") or prog in PYTHON or (prog == "torchrun" and "-m" in cmd.argv):
        return "python"
    return "unknown"


def placeholders(argv) -> set:
    return {m for w in argv for m in re.findall(r"<[^<>\s]+>", w)}


def configfile_misuse(argv) -> list:
    """Words read as config files after ``--configfile`` that are not config files (targets written too late)."""
    bad, reading = [], False
    for w in argv:
        if w == "--configfile" or w == "--configfiles":
            reading = True
        elif w.startswith("-"):
            reading = False
        elif reading and not re.search(r"(\.ya?ml|\.json|\$\(CONFIG\)|<[^>]+>)$", w):
            bad.append(w)
    return bad


# ----------------------------------------------------------------------------- fixtures for placeholders
def _fixture(kind_: str, folder: Path, name: str = "") -> Path:
    rng = np.random.default_rng(0)
    if kind_ == "name":
        return folder / name.strip("<>")
    if kind_ == "volume":
        path = folder / f"volume-{len(list(folder.glob('volume-*')))}.h5"
        with h5py.File(path, "w") as f:
            f["recon"] = rng.random((6, 48, 48), dtype=np.float32)
        return path
    if kind_ == "projections":
        path = folder / "projections.h5"
        with h5py.File(path, "w") as f:
            f["exchange/data"] = rng.random((16, 4, 48), dtype=np.float32)
            f["exchange/theta"] = np.linspace(0, 180, 16, endpoint=False)
        return path
    if kind_ == "config-with-scan":
        # the default config plus the README's `scans:` example, pointed at the demo scan
        cfg = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
        example = next(yaml.safe_load(b) for b in _yaml_blocks(ROOT / "README.md") if "scans:" in b)["scans"]
        for scan in example.values():  # checked as shown, but for the path: a dry-run needs the file to exist
            scan["path"] = str(ROOT / "tests" / "data" / "scan_demo.h5")
        cfg["scans"].update(example)
        path = folder / "my-config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path
    if kind_ == "config-override":
        # a partial config merged over another: the learning-curve experiment of docs/claims.md
        path = folder / "override.yaml"
        path.write_text(yaml.safe_dump({"tomogan": {"seeds": [0, 1, 2], "train": {"max_iter": 600, "val_every": 25}}}))
        return path
    raise KeyError(kind_)


def _yaml_blocks(path: Path) -> list:
    return re.findall(r"```ya?ml\n(.*?)```", path.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("placeholders")
    return {name: str(_fixture(k, folder, name)) for name, k in PLACEHOLDERS.items()}


def substitute(argv, fixtures) -> list:
    out = []
    for w in argv:
        for name, path in fixtures.items():
            w = w.replace(name, path)
        out.append(w)
    return out


# ----------------------------------------------------------------------------- the pages and their commands
def test_pages_show_commands_and_every_command_has_a_rule():
    pages = {c.page for c in ALL}
    assert "README.md" in pages and len(pages) >= 4, pages
    unknown = [f"{c.page}:{c.line}: {c.text}" for c in ALL if kind(c) == "unknown"]
    assert not unknown, "commands no rule checks (add a rule in tests/test_docs.py):\n" + "\n".join(unknown)
    unknown_ph = {p for c in ALL for p in placeholders(c.argv)} - set(PLACEHOLDERS)
    assert not unknown_ph, f"placeholders without a fixture: {sorted(unknown_ph)}"
    texts = {c.text for c in ALL}
    assert set(RUN) <= texts, f"RUN lists commands no page shows: {sorted(set(RUN) - texts)}"
    unused = [p for p in SKIPPED if not any(kind(c) == "skip" and c.text.startswith(p) for c in ALL)]
    assert not unused, f"SKIPPED lists commands no page shows: {unused}"


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for command in ("make all", "make test"):
        assert f"\n{command}\n" in text
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in text, f"README does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_between_pages_resolve(page):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    broken = [link for link in links if "://" not in link and not (page.parent / link).exists()]
    assert not broken, f"{page.name}: broken links {broken}"


def _outside_generated(text: str) -> str:
    text = re.sub(r"<!-- begin (\w+) -->.*?<!-- end \1 -->", "", text, flags=re.S)
    return re.sub(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", "", text, flags=re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_table_of_numbers_is_typed_by_hand(page):
    rows = [line for line in _outside_generated(page.read_text()).splitlines()
            if line.startswith("|") and re.search(r"\d+\.\d+", line)]
    assert not rows, f"{page.name}: numbers typed into a table; generate them instead:\n" + "\n".join(rows)


def test_makefile_snakemake_lines_put_targets_before_configfile():
    lines = [line.split() for line in (ROOT / "Makefile").read_text().splitlines() if "snakemake " in line
             and not line.lstrip().startswith("#")]
    assert lines
    for words in lines:
        assert not configfile_misuse(words), " ".join(words)


def test_make_readme_builds_the_results_page():
    recipe = re.search(r"^readme:.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    for name in ("results/tables/main.md", "results/bench/inference_speed.csv", "results/timing/timing.csv",
                 "study.pages docs/results.md"):
        assert name in recipe, name


def _snakemake(argv, cwd):
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                           "--directory", str(cwd), *argv], capture_output=True, text=True, cwd=ROOT, env=env)


_DRY_RUNS = {}  # the same dry-run shown twice is planned once


@pytest.mark.parametrize("cmd", [c for c in ALL if kind(c) == "snakemake"], ids=lambda c: c.id)
def test_snakemake_command_plans(cmd, fixtures, tmp_path):
    assert not configfile_misuse(cmd.argv), f"target after --configfile: {cmd.text}"
    argv = substitute(cmd.argv[1:], fixtures)
    if "-n" not in argv and "--dry-run" not in argv and "--dryrun" not in argv:
        argv = ["-n", *argv]
    key = tuple(argv)
    if key not in _DRY_RUNS:
        _DRY_RUNS[key] = _snakemake(argv, tmp_path)
    proc = _DRY_RUNS[key]
    assert proc.returncode == 0, f"{cmd.text}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("cmd", [c for c in ALL if kind(c) == "make"], ids=lambda c: c.id)
def test_make_command_is_a_target(cmd):
    proc = subprocess.run(["make", "-n", *cmd.argv[1:]], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, f"{cmd.text}\n{proc.stderr[-2000:]}"


# ----------------------------------------------------------------------------- Python commands
class _Parsed(Exception):
    """Raised once the command's top-level argument parser has read its arguments."""


@contextlib.contextmanager
def _stop_after_parsing(monkeypatch):
    """Make the outermost argparse call raise :class:`_Parsed` once it has parsed (errors still exit 2)."""
    depth = 0
    parse_args, parse_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def wrap(original):
        def patched(self, *args, **kwargs):
            nonlocal depth
            depth += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                depth -= 1
            if depth == 0:
                raise _Parsed(result)
            return result
        return patched

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", wrap(parse_args))
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", wrap(parse_known))
    yield


def _run_module_as_main(name: str) -> None:
    """``python -m name`` in this process, from the module's source (whoever imported it before, e.g. pytest)."""
    spec = importlib.util.find_spec(name)
    if spec.submodule_search_locations is not None:  # a package: its __main__
        name, spec = f"{name}.__main__", importlib.util.find_spec(f"{name}.__main__")
    if not hasattr(spec.loader, "get_code"):  # e.g. pytest's assertion-rewriting loader
        parent = name.rpartition(".")[0]
        spec = importlib.machinery.PathFinder.find_spec(name, sys.modules[parent].__path__ if parent else None)
    code = spec.loader.get_code(name)
    exec(code, {"__name__": "__main__", "__spec__": spec, "__file__": spec.origin, "__loader__": spec.loader,
                "__package__": name.rpartition(".")[0], "__builtins__": __builtins__})


def _entry(argv):
    """(function to call, sys.argv) that runs a Python command in this process as its console script would."""
    prog, args = argv[0], list(argv[1:])
    if prog == "torchrun":  # the launcher's options, then -m MODULE
        args = args[args.index("-m"):]
        prog = "python"
    if prog in PYTHON:
        if args[0] == "-m":
            module = args[1]
            return (lambda: _run_module_as_main(module)), [module, *args[2:]]
        script = ROOT / args[0]
        assert script.is_file(), f"no script {args[0]}"
        return (lambda: runpy.run_path(str(script), run_name="__main__")), [str(script), *args[1:]]
    (ep,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == prog] or [None]
    assert ep is not None, f"no console script {prog} (is the package installed?)"
    return ep.load(), [prog, *args]


@pytest.mark.parametrize("cmd", [c for c in ALL if kind(c) == "python"], ids=lambda c: c.id)
def test_python_command_parses(cmd, fixtures, monkeypatch):
    call, argv = _entry(substitute(cmd.argv, fixtures))
    monkeypatch.setattr(sys, "argv", argv)
    err, code = io.StringIO(), "no parse"
    with _stop_after_parsing(monkeypatch), contextlib.redirect_stderr(err):
        try:
            call()
        except _Parsed:
            code = 0
        except SystemExit as exc:  # -h, or argparse's error (status 2)
            code = exc.code or 0
    if code == "no parse":
        pytest.fail(f"{cmd.text}: finished without parsing its arguments with argparse, so it cannot be checked")
    assert code == 0, f"{cmd.id}: {cmd.text}\n{err.getvalue()[-2000:]}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A scratch copy of the repository: code and data linked, the pages copied, nothing generated."""
    folder = tmp_path_factory.mktemp("repo")
    for entry in ROOT.iterdir():
        if entry.name in {"docs", "README.md"}:
            (shutil.copytree if entry.is_dir() else shutil.copy)(entry, folder / entry.name)
        elif entry.name not in {"results", ".snakemake", "served", "runs", ".git", ".venv", ".pytest_cache"}:
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow
def test_quick_commands_run_as_written(scratch, fixtures):
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    for cmd in [c for c in ALL if c.text in RUN]:
        argv = substitute(cmd.argv, fixtures)
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=scratch, env=env)
        assert proc.returncode == 0, f"{cmd.id}: {cmd.text}\n{proc.stderr[-3000:]}"
    assert (scratch / "served" / "release.pt").is_file() and (scratch / "enhanced-release.h5").is_file()
    assert "| total" in (scratch / "docs" / "cluster.md").read_text()


# ----------------------------------------------------------------------------- the results page
MAIN_MD = ("SSIM / PSNR (dB) inside the circular field of view. Config hash `{hash}`.\n\n"
           "| dataset | dose | FBP |\n|:--|:--|:--|\n| foam3 | sparse-8 | 0.442 / 17.0 |\n")


@pytest.fixture(scope="module")
def default_hash():
    return results_page.config_hash(ROOT / "config" / "default.yaml")


def _results(folder: Path, digest: str, timing: bool = False) -> Path:
    (folder / "tables").mkdir(parents=True)
    (folder / "tables" / "main.md").write_text(MAIN_MD.format(hash=digest))
    (folder / "bench").mkdir()
    pd.DataFrame([{"variant": v, "size": 64, "depth": 3, "batch": 1, "ms_per_slice": 2.5, "gflops": 10.0,
                   "fraction_of_fp32_matmul": 0.5, "val_ssim_change": 0.0, "matmul_gflops_fp32": 20.0,
                   "matmul_gflops_bf16": 40.0, "device": "CPU", "device_name": "test-cpu", "threads": 1}
                  for v in ("eager fp32", "channels_last")]).to_csv(folder / "bench" / "inference_speed.csv",
                                                                   index=False)
    if timing:
        (folder / "timing").mkdir()
        pd.DataFrame([{"method": "FBP", "ms_per_slice": 1.25, "seconds": 0.01, "slices": 2, "ssim": 0.5,
                       "psnr": 20.0, "ssim_object": 0.6, "psnr_object": 21.0, "device": "cpu", "setting": "",
                       "dataset": "foam3", "dose": "sparse-8", "threads": 2, "host": "test-cpu", "gpu": ""}]
                     ).to_csv(folder / "timing" / "timing.csv", index=False)
    return folder


PAGE = ("# Results\n\nhand-written\n\n<!-- begin main -->\nold\n<!-- end main -->\n\nmiddle\n\n"
        "<!-- begin speed -->\n<!-- end speed -->\n\n<!-- begin timing -->\nold timing\n<!-- end timing -->\n"
        "<!-- begin claims -->\n<!-- end claims -->\n<!-- begin crossval -->\n<!-- end crossval -->\n"
        "<!-- begin lofo -->\n<!-- end lofo -->\nend\n")


def test_results_page_is_built_from_the_files(tmp_path, default_hash):
    results = _results(tmp_path / "results", default_hash)
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    sources = results_page.build(page, results)
    text = page.read_text()
    assert sources["timing"] == "absent" and sources["main"].endswith("main.md")
    assert "old" not in text.replace("old timing", "") and "old timing" not in text
    assert text.startswith("# Results\n\nhand-written\n") and "\nmiddle\n" in text and text.endswith("end\n")
    assert f"from `results/tables/main.md`, config hash `{default_hash}`" in text  # the workflow's path, not the folder's
    assert "| foam3 | sparse-8 | 0.442 / 17.0 |" in text and "channels_last" in text and "test-cpu" in text
    assert "no `results/timing/timing.csv`" in text and str(results) not in text
    results_page.build(page, results)
    assert page.read_text() == text  # a rebuild from the same files changes nothing
    _results(tmp_path / "with-timing", default_hash, timing=True)
    results_page.build(page, tmp_path / "with-timing")
    text = page.read_text()
    assert "| FBP" in text and "(dataset foam3; dose sparse-8; 2 slices; test-cpu; 2 threads)" in text


@pytest.mark.parametrize("problem", ["marker", "input", "hash", "page"])
def test_results_page_errors_are_one_line_and_exit_2(problem, tmp_path, default_hash, capsys):
    results = _results(tmp_path / "results", "0" * 12 if problem == "hash" else default_hash)
    page = tmp_path / "results.md"
    if problem != "page":
        page.write_text(PAGE.replace("<!-- end speed -->", "") if problem == "marker" else PAGE)
    if problem == "input":
        (results / "bench" / "inference_speed.csv").unlink()
    before = page.read_text() if page.exists() else None
    with pytest.raises(SystemExit) as exc:
        results_page.main([str(page), "--results", str(results)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    expect = {"marker": f"error: {page}: needs one '<!-- begin speed -->'",
              "input": f"error: {results / 'bench' / 'inference_speed.csv'}: file not found",
              "hash": f"error: {results / 'tables' / 'main.md'}: was made with config hash 000000000000",
              "page": f"error: {page}: file not found"}[problem]
    assert len(err) == 1 and err[0].startswith(expect), err
    assert (page.read_text() if page.exists() else None) == before  # nothing half-written


def test_config_hash_is_the_workflows(tmp_path, default_hash):
    proc = _snakemake(["-n", "-p", "results/metrics/conventional.csv"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"--config-hash {default_hash}" in proc.stdout


def test_committed_results_page_has_every_block():
    for block in results_page.BLOCKS:
        text = (ROOT / block.page).read_text()
        assert text.count(f"<!-- begin {block.name} -->") == 1 and text.count(f"<!-- end {block.name} -->") == 1


def test_cost_table_sets_each_scans_ranking_beside_its_other_jobs(tmp_path):
    def bench(rel, s):
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"s\th:m:s\n{s}\t0:00:{s}\n")

    bench("crossval/scan/photons-1e3.tsv", 12.0)
    bench("crossval_figure/scan/photons-1e3.tsv", 100.0)   # the ranking's own figure: not "other"
    bench("fbp/scan/photons-1e3.tsv", 2.0)
    bench("apply_classical/scan/photons-1e3/fbp-tv.tsv", 3.0)
    bench("apply_classical/scan/photons-1e3/sirt.tsv", 1.0)
    bench("n2i_train/scan-photons-1e3.tsv", 2.0)
    bench("fbp/scan/sparse-4.tsv", 50.0)                   # another dose
    bench("fbp/other/photons-1e3.tsv", 50.0)               # another volume
    table = results_page.cost_table(tmp_path)
    assert table.to_dict("records") == [{"dataset": "scan", "dose": "photons-1e3", "crossval_s": 12.0, "other_jobs": 4,
                                         "other_s": 8.0, "ratio": 1.5}]
    text = results_page.cost_markdown(table, cpu="Some CPU")
    assert "## What it costs" in text and "Some CPU" in text and "| scan" in text
    assert results_page.cost_table(tmp_path / "none").empty and results_page.cost_markdown(results_page.cost_table(tmp_path / "none")) == ""
