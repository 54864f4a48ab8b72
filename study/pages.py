"""Build the results page (``docs/results.md``) from the workflow's files: every number generated, none typed.

The page is hand-written prose around generated blocks. Each block sits between two markers,
``<!-- begin NAME -->`` and ``<!-- end NAME -->``, and is rebuilt from one result file of a finished run:
:data:`BLOCKS` names each block's file, whether it is required, how it is rendered (most as the file is) and
the page it belongs to.

Each block starts with a line naming its file and the hash of the config that made it (the workflow's
``CONFIG_HASH``: the config after schema validation, as JSON with sorted keys, SHA-256, first 12 hex
digits). The main table states its own hash; it must match the config given, so that one page never mixes
two runs. The page is written atomically. A missing marker or a missing required file stops the build with
``error: <file>: <problem>`` and exit status 2::

    python -m study.pages docs/results.md [--results results] [--configfile config/default.yaml]

``make readme`` builds the files with Snakemake, then runs this command for each page.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from simulate.io import benchmark_seconds, read_table
from simulate.plumbing import InputError, cli, write_text
from study.config import config_hash as _config_hash
from study.config import load_config
from study.paths import BENCHMARKS, JOBS, benchmark_fields, benchmark_glob, job_fields

__all__ = ["Block", "BLOCKS", "PAGE_BLOCKS", "config_hash", "stated_hash", "render_timing", "render_findings",
           "replace_blocks", "build", "main"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def _read_text(path: Path) -> str:
    return path.read_text()


def _read_crossval(path: Path) -> str:
    """The check (``crossval/check.md``) and, from the run's benchmark files, what the ranking cost (on the CPU
    the run's timing table names, ``timing/timing.csv``'s ``host``)."""
    results = path.parent.parent
    table = cost_table(results.parent / BENCHMARKS)  # beside results/
    timing = results / "timing" / "timing.csv"
    cpu = "CPU not recorded"
    if timing.exists():
        hosts = pd.read_csv(timing).get("host")
        cpu = str(hosts.dropna().iloc[0]) if hosts is not None and hosts.notna().any() else cpu
    return path.read_text().rstrip("\n") + ("\n\n" + cost_markdown(table, cpu=cpu) if len(table) else "\n")


def cost_table(benchmarks) -> pd.DataFrame:
    """What the cross-validation of each scan and dose cost, beside the rest of that scan's work at that dose.

    From a workflow's benchmark files (``benchmarks/``), found by the rules' job names
    (:data:`study.paths.JOBS`): ``crossval`` (the wall seconds of each ``crossval`` job) and ``other`` (those
    of every other job of that dataset and dose -- its low-dose variant, FBP, each method applied, each model's
    inference, Noise2Inverse: every rule whose job name holds both; the figure of the ranking left out),
    ``ratio = crossval / other``. The trainings shared by every volume are not in ``other``. Empty when there is
    no crossval benchmark.
    """
    import pandas as pd

    root = Path(benchmarks)
    per_pair = [rule for rule in JOBS if {"dataset", "dose"} <= set(job_fields(rule))
                and rule not in ("crossval", "crossval_figure")]
    rows = []
    for f in sorted(root.glob(benchmark_glob("crossval"))):
        fields = benchmark_fields("crossval", f.relative_to(root).as_posix())  # the glob's own shape: never None
        dataset, dose = fields["dataset"], fields["dose"]
        others = sorted({g for rule in per_pair for g in root.glob(benchmark_glob(rule, dataset=dataset, dose=dose))})
        cv_s, other_s = benchmark_seconds([f]), benchmark_seconds(others)
        rows.append({"dataset": dataset, "dose": dose, "crossval_s": cv_s, "other_jobs": len(others),
                     "other_s": other_s, "ratio": cv_s / other_s if other_s else float("nan")})
    return pd.DataFrame(rows, columns=["dataset", "dose", "crossval_s", "other_jobs", "other_s", "ratio"])


def cost_markdown(table, *, rows_scored=None, rows_processed=None, cpu: str = "") -> str:
    """:func:`cost_table` as a Markdown section (numbers to 1 decimal), with what the rows are."""
    if table is None or not len(table):
        return ""
    where = (f"The held-out ranking scores {rows_scored} detector row(s) of each scan; the other jobs process the "
             f"{rows_processed} evaluated slices. " if rows_scored and rows_processed else "")
    lines = ["## What it costs", "",
             f"Wall seconds of each scan's `crossval` job (one core) beside those of its other jobs at that dose"
             f"{' (' + cpu + ')' if cpu else ''}. {where}The trainings, shared by every volume, are not counted.",
             "", table.to_markdown(index=False, floatfmt=".1f"), ""]
    return "\n".join(lines)


def _read_speed(path: Path) -> str:
    from analysis.inference_speed import render

    return render(_read_csv(path, {"variant", "batch", "ms_per_slice", "gflops", "device_name"}))


def _read_timing(path: Path) -> str:
    return render_timing(_read_csv(path, {"method", "ms_per_slice", "ssim", "psnr"}))


def _read_findings(path: Path) -> str:
    return render_findings(_read_csv(path, {"claim", "text", "metric", "holds", "comparisons"}))


def render_findings(summary: pd.DataFrame) -> str:
    """What the study finds (``analysis.claims`` summary): the controls first, and whether the run can judge; then one
    row per claim, its primary metric's answer first and the secondary metrics after it.

    >>> s = pd.DataFrame({"claim": ["c", "c"], "text": ["t", "t"], "metric": ["ssim", "psnr"],
    ...                   "role": ["primary", "secondary"], "holds": ["yes", "no: equivalent"], "comparisons": [2, 2],
    ...                   "seeds": [3, 3]})
    >>> print(render_findings(s).splitlines()[4])
    | c       | t      |             2 |       3 | ssim: **yes** | no: equivalent |
    """
    summary = summary.copy()
    role = summary["role"].fillna("") if "role" in summary else pd.Series("", index=summary.index)
    controls = summary[summary["claim"].str.startswith("control-")]
    claims = summary[~summary["claim"].str.startswith("control-")].assign(role=role)
    head = []
    if len(controls):
        failed = controls[controls["holds"] != "passes"]
        head = [("**This run cannot judge the claims:** " + ", ".join(failed["claim"]) + " failed (docs/results.md, "
                 "Controls)." if len(failed) else
                 "Controls: the null control (two seed groups of one run) finds no difference and the positive "
                 "control (the same output blurred to lose twice the SSIM margin) finds it, so the run can judge."), ""]
    primary = claims[(claims["role"] == "primary") | (claims["metric"] == "speedup")]
    first = primary.groupby(["claim", "text"], sort=False).apply(
        lambda g: f"{g['metric'].iloc[0]}: **{g['holds'].iloc[0]}**", include_groups=False).rename("primary")
    secondary = claims[claims["role"] == "secondary"]
    wide = secondary.pivot_table(index=["claim", "text"], columns="metric", values="holds", aggfunc="first",
                                 sort=False)
    wide = wide.reindex(columns=[m for m in secondary["metric"].unique() if m in wide.columns])
    counts = claims.groupby(["claim", "text"], sort=False).agg(
        comparisons=("comparisons", "max"), **({"seeds": ("seeds", "min")} if "seeds" in claims else {}))
    table = counts.join(first).join(wide).reset_index().fillna("")
    return "\n".join(head + [
        "Does each claim hold? Decided by its primary metric; the secondary metrics follow. *no* names the verdicts "
        "that refute it (*equivalent*: no difference that matters; *contradicted*: the other way); *not tested at "
        "this budget*: the compared runs had not settled (docs/claims.md says how each is judged; docs/results.md "
        "has every effect and interval).", "", table.to_markdown(index=False)])


@dataclass(frozen=True)
class Block:
    """One generated block of the page.

    Parameters
    ----------
    name : str
        Marker name: the block lies between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``.
    source : str
        Its file, relative to the results folder.
    render : callable
        ``Path -> str``: the file as Markdown; raises :class:`~simulate.plumbing.InputError` on a bad file.
    required : bool
        A missing required file is an error; a missing optional one leaves a one-line note in its block.
    page : str
        The page (relative to the repository) whose markers hold it.
    """

    name: str
    source: str
    render: Callable[[Path], str]
    required: bool = True
    page: str = "docs/results.md"


BLOCKS = (
    Block("main", "tables/main.md", _read_text),
    Block("speed", "bench/inference_speed.csv", _read_speed),
    Block("timing", "timing/timing.csv", _read_timing, required=False),
    Block("claims", "claims/claims.md", _read_text, required=False),
    Block("findings", "claims/claims_summary.csv", _read_findings, required=False, page="README.md"),
    Block("crossval", "crossval/check.md", _read_crossval, required=False),
    Block("lofo", "generalist/lofo.md", _read_text, required=False),
    # from `python bench/fault_injection.py` on the smoke config
    Block("faults", "bench/fault_injection.md", _read_text, required=False, page="docs/performance.md"),
    # from `python bench/learning_curve_budget.py`, the learning-curve experiments
    Block("budget", "bench/learning_curve_budget.md", _read_text, required=False, page="docs/claims.md"),
    # from `python bench/run_cost.py`: the per-rule cost of the run (`make readme`)
    Block("cost", "bench/run_cost.md", _read_text, required=False, page="docs/performance.md"),
    # from `python bench/scan_truth.py`: tomogan-scan where the answer is known
    Block("scan_truth", "bench/scan_truth.md", _read_text, required=False, page="docs/methods.md"),
    # from `python bench/scan_cost.py`: what tomogan-scan costs on a scan of a beamline's width
    Block("scan_cost", "bench/scan_cost.md", _read_text, required=False, page="docs/performance.md"),
)
PAGE_BLOCKS = tuple(b.name for b in BLOCKS if b.page == "docs/results.md")  # the results page's, the default


def _read_csv(path: Path, need: set) -> pd.DataFrame:
    return read_table(path, what="CSV table", need=need)


def config_hash(configfile) -> str:
    """The workflow's hash of a config file: :func:`study.config_hash` of it, defaults filled in.

    Raises :class:`~simulate.plumbing.InputError` when the file is missing, not YAML, or fails the schema.
    """
    return _config_hash(load_config(configfile))


def stated_hash(text: str) -> str | None:
    """The config hash a table states (``Config hash `abc123def456`.``), or None.

    Examples
    --------
    >>> stated_hash("mean over slices. Config hash `96fe057cd877`.")
    '96fe057cd877'
    """
    found = set(re.findall(r"Config hash `([0-9a-f]+)`", text))
    if len(found) > 1:
        raise ValueError(f"the table states several config hashes: {sorted(found)}")
    return found.pop() if found else None


def render_timing(df: pd.DataFrame) -> str:
    """The timing CSV (:mod:`analysis.timing`) as Markdown: what was timed where, then one row per method.

    Parameters
    ----------
    df : DataFrame
        One row per method with ``method``, ``ms_per_slice``, ``ssim``, ``psnr`` (and, when present,
        ``ssim_object``, ``psnr_object``, ``device``, ``setting``, ``dataset``, ``dose``, ``slices``,
        ``threads``, ``host``, ``gpu``).

    Returns
    -------
    str
        A sentence on the conditions, a blank line and a pipe table.
    """
    first = df.iloc[0]
    parts = [f"{k} {first[k]}" for k in ("dataset", "dose") if k in df and pd.notna(first[k])]
    if "slices" in df:
        parts.append(f"{int(first['slices'])} slices")
    device = next((first[k] for k in ("gpu", "host") if k in df and isinstance(first[k], str) and first[k]), "")
    if device:
        parts.append(device)
    if "threads" in df:
        parts.append(f"{int(first['threads'])} threads")
    head = "Time per slice of every method, measured in one process" + (f" ({'; '.join(parts)})." if parts else ".")
    cols = [c for c in ("method", "ms_per_slice", "ssim", "psnr", "ssim_object", "psnr_object", "device", "setting")
            if c in df]
    table = df[cols].rename(columns={"ms_per_slice": "ms/slice", "ssim": "SSIM", "psnr": "PSNR (dB)",
                                     "ssim_object": "SSIM object", "psnr_object": "PSNR object (dB)"})
    fmt = {"ms/slice": ".1f", "SSIM": ".3f", "PSNR (dB)": ".1f", "SSIM object": ".3f", "PSNR object (dB)": ".1f"}
    text_cols = [c for c in ("device", "setting") if c in table]
    table[text_cols] = table[text_cols].astype(object).where(table[text_cols].notna(), "")
    return head + "\n\n" + table.to_markdown(index=False, floatfmt=tuple(fmt.get(c, "") for c in table.columns)) + "\n"


def replace_blocks(text: str, blocks: dict, path) -> str:
    """Replace the body of each named block of ``text``.

    Parameters
    ----------
    text : str
        The page.
    blocks : dict of str to str
        Marker name -> new body (Markdown).
    path : str or Path
        The page's file, named in errors.

    Returns
    -------
    str
        The page with every block's lines between its markers replaced; everything else unchanged.

    Raises
    ------
    InputError
        A block's markers are missing, repeated, or in the wrong order.

    Examples
    --------
    >>> replace_blocks("a\\n<!-- begin x -->\\nold\\n<!-- end x -->\\nb\\n", {"x": "new"}, "page.md")
    'a\\n<!-- begin x -->\\nnew\\n<!-- end x -->\\nb\\n'
    """
    for name, body in blocks.items():
        begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
        if text.count(begin) != 1 or text.count(end) != 1:
            raise InputError(path, f"needs one '{begin}' and one '{end}' marker "
                                   f"(found {text.count(begin)} and {text.count(end)})")
        i, j = text.index(begin) + len(begin), text.index(end)
        if j < i:
            raise InputError(path, f"has '{end}' before '{begin}'")
        text = text[:i] + "\n" + body.strip("\n") + "\n" + text[j:]
    return text


def build(page, results="results", configfile=ROOT / "config" / "default.yaml", blocks=None) -> dict:
    """Rebuild every block of ``page`` from the files under ``results``.

    Parameters
    ----------
    page : str or Path
        The Markdown page, with a marker pair for each of ``blocks``.
    results : str or Path
        The workflow's results folder.
    configfile : str or Path
        The config the results were made with; its hash labels every block.
    blocks : sequence of Block, optional
        What to rebuild (default: those of :data:`PAGE_BLOCKS`, the results page's).

    Returns
    -------
    dict of str to str
        Block name -> the file it came from, or ``"absent"`` for a missing optional file.

    Raises
    ------
    InputError
        Missing page, marker, required file or config; a bad file; a main table made with another config.
    """
    page, results = Path(page), Path(results)
    blocks = [b for b in BLOCKS if b.name in PAGE_BLOCKS] if blocks is None else blocks
    if not page.is_file():
        raise InputError(page, "file not found")
    text = page.read_text()
    digest = config_hash(configfile)
    bodies, sources = {}, {}
    for block in blocks:
        src = results / block.source
        named = f"results/{block.source}"  # the page names the workflow's path, not the folder it was read from
        if not src.is_file():
            if block.required:
                raise InputError(src, "file not found (make readme builds it; or run the workflow first)")
            bodies[block.name] = (f"*Not in this build: no `{named}` (config hash `{digest}`). "
                                  "Generated by `python -m study.pages`.*")
            sources[block.name] = "absent"
            continue
        body = block.render(src)
        try:
            said = stated_hash(body)
        except ValueError as exc:
            raise InputError(src, str(exc)) from None
        if said is not None and said != digest:
            raise InputError(src, f"was made with config hash {said}, but {configfile} hashes to {digest}: "
                                  "rebuild it with that config (make readme CONFIG=...)")
        bodies[block.name] = (f"*Generated by `python -m study.pages` from `{named}`, "
                              f"config hash `{digest}`. Do not edit by hand.*\n\n{body}")
        sources[block.name] = str(src)
    write_text(page, replace_blocks(text, bodies, page))
    return sources


@cli
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m study.pages",
                                description="Rebuild the generated blocks of the results page from a finished run.")
    p.add_argument("page", help="the Markdown page to update, e.g. docs/results.md")
    p.add_argument("--results", default="results", help="the workflow's results folder (default %(default)s)")
    p.add_argument("--configfile", default=str(ROOT / "config" / "default.yaml"),
                   help="the config the results were made with (default config/default.yaml)")
    p.add_argument("--blocks", nargs="+", default=list(PAGE_BLOCKS), choices=[b.name for b in BLOCKS],
                   help="the blocks the page has (default: %(default)s)")
    args = p.parse_args(argv)
    blocks = [b for b in BLOCKS if b.name in args.blocks]
    for name, src in build(args.page, args.results, args.configfile, blocks).items():
        logger.info("block %s <- %s", name, src)
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    main()
