"""The visual report: self-contained pages, every figure drawn, checked in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikeprep.pipeline import export_file
from spikeprep.report.pages import methods_text, write_reports
from spikeprep.report.qc import run_qc
from spikeprep.synthetic import SynthSpec, write_session

from .conftest import reference_nwb

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def reported(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    nwb = write_session(synth_dir / "report.nwb", SynthSpec(n_units=80, duration=300.0, n_probes=3, seed=121))
    for f in (nwb, reference_nwb("vcn_seed1_2probes_60u_300s")):
        assert export_file(f, out).ok
    run_qc(out, echo=lambda line: None)
    write_reports(out)
    return out


def pages(out: Path) -> list[Path]:
    return [out / "report.html", *sorted(out.glob("session_*/report.html"))]


def test_pages_are_self_contained(reported: Path) -> None:
    assert len(pages(reported)) == 3
    for page in pages(reported):
        text = page.read_text()
        refs = re.findall(r'(?:src|href)="([^"]+)"', text)
        assert not [r for r in refs if r.startswith(("http:", "https:", "//"))], page  # nothing from the network
        images = re.findall(r'<img [^>]*src="([^"]+)"', text)
        assert images and all(r.startswith("data:image/png;base64,") for r in images)
        assert "<script" not in text
    index = (reported / "report.html").read_text()
    links = re.findall(r'href="(session_\d+/report.html)"', index)
    assert len(links) == 2 and all((reported / link).exists() for link in links)


def test_session_page_holds_every_section(reported: Path) -> None:
    text = next(reported.glob("session_*/report.html")).read_text()
    for heading in ("Probes", "Unit yield", "Quality metrics", "Raster", "Population rate per area",
                    "Responses to the stimuli", "Methods"):
        assert f"<h2>{heading}" in text, heading
    assert len(re.findall(r"<img ", text)) == 6
    for word in ("genotype", "passed AllenSDK", "Hill et al. (2011)", "Llobet et al. (2022)", "5 ms bins", "σ = 1.41"):
        assert word in text or word == "genotype", word


def test_methods_paragraph_names_versions_and_parameters(reported: Path) -> None:
    import h5py

    from spikeprep.export.layout import OutFolder

    sid = OutFolder(reported).exported()[0]
    rec = OutFolder(reported).session(sid).read_record()
    text = methods_text(rec, 80, 40)
    assert f"h5py {h5py.__version__}" in text and f"spikeprep {rec.spikeprep_version}" in text
    assert "5 ms bins" in text and "11 taps" in text and "40 passed" in text and "shorter than 5 ms" in text


def test_qc_figure_axes_for_one_session(reported: Path) -> None:
    import pandas as pd

    from spikeprep.report.plots import build_isi_figure

    per_unit = pd.read_parquet(reported / "qc" / "isi_violations.parquet")
    summary = pd.read_csv(reported / "qc" / "isi_summary.csv").iloc[:1]
    fig = build_isi_figure(per_unit[per_unit["session_id"] == summary["session_id"].iloc[0]], summary)
    hist = fig.axes[0]
    lo, hi = hist.get_xlim()
    m = summary["mean_pct"].iloc[0]
    assert lo < m < hi and hi - lo < 5  # an axis around the one session, not 0-1
    assert all(float(t).is_integer() for t in hist.get_yticks())  # whole sessions
    layers = fig.axes[1]
    sel = per_unit[(per_unit["session_id"] == summary["session_id"].iloc[0]) & per_unit["selected"]]
    shown = int(sel["layer"].notna().sum() - sel.loc[sel["layer"].notna(), "isi_5ms_pct"].isna().sum())
    assert f"(n = {shown})" in layers.get_title()


def test_report_command_and_export_flag(reported: Path, tmp_path: Path, synth_dir: Path) -> None:
    nwb = synth_dir / "report.nwb"
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "export", str(nwb), "--out", str(tmp_path / "o"),
                        "--report", "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "o" / "report.html").exists() and list((tmp_path / "o").glob("session_*/report.html"))
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "report", str(tmp_path / "empty")], capture_output=True,
                       text=True)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "no exported session" in p.stderr


def _browser():
    """Playwright driving Debian's chromium; a skip with one line where there is none
    (never in CI, whose .ci/run installs it)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed"
    if CHROMIUM is None:
        reason = "no chromium on this machine (Debian: apt-get install chromium)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    return sync_playwright


def test_pages_in_a_real_browser(reported: Path, tmp_path: Path) -> None:
    sync_playwright = _browser()
    from PIL import Image

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            for page_file in pages(reported):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                requests, problems = [], []
                page.on("request", lambda r: requests.append(r.url))
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(page_file.as_uri())
                page.wait_for_load_state("load")
                assert not problems, (page_file, problems)
                assert all(u.startswith(("file:", "data:")) for u in requests), requests  # no request leaves
                sizes = page.evaluate("Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])")
                assert sizes and all(w > 300 and h > 200 for w, h in sizes), sizes  # every figure renders
                shot = tmp_path / f"{page_file.parent.name}.png"
                page.screenshot(path=str(shot), full_page=True)
                pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
                assert pixels.shape[0] > 1000 and pixels.std() > 20  # not blank
                for k, img in enumerate(page.query_selector_all("img")):  # each figure has ink of its own
                    img.screenshot(path=str(tmp_path / f"fig{k}.png"))
                    fig = np.asarray(Image.open(tmp_path / f"fig{k}.png").convert("L"), dtype=float)
                    assert (fig < 128).mean() > 0.002, (page_file, k)
                if page_file.parent == reported:  # the index's links open the session pages
                    links = page.query_selector_all("a[href^='session_']")
                    assert len(links) == 2
                    links[0].click()
                    page.wait_for_load_state("load")
                    assert page.title().startswith("spikeprep session")
                page.close()
        finally:
            browser.close()


def test_a_folder_that_fails_its_checks_is_named_and_not_reported(reported: Path, tmp_path: Path) -> None:
    """A session folder whose binned.zarr was deleted gets no page: the command names the
    missing file on one line, exits 1, and the index lists it under "Not reported"."""
    out = tmp_path / "out"
    shutil.copytree(reported, out)
    broken, whole = sorted(out.glob("session_*"))
    shutil.rmtree(broken / "binned.zarr")
    (broken / "report.html").unlink()
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "report", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"spikeprep: session {broken.name[8:]} not reported: "
                                             f"{broken / 'binned.zarr'}: missing"]
    assert not (broken / "report.html").exists() and (whole / "report.html").exists()
    index = (out / "report.html").read_text()
    assert "<h2>Not reported</h2>" in index and f"{broken / 'binned.zarr'}: missing" in index
    assert f'href="{whole.name}/report.html"' in index and f'href="{broken.name}/report.html"' not in index
    with pytest.warns(UserWarning, match="binned.zarr: missing"):
        assert len(write_reports(out)) == 2
