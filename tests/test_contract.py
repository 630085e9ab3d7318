"""The output contract has one home: the layout object, the output registry, the column
declarations and the options object; imports point one way."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import spikeprep
from spikeprep import outputs
from spikeprep.annotate import DERIVED_COLUMNS, FRONT_COLUMNS, UNIT_COLUMNS
from spikeprep.layout import SCHEMA_VERSION, SessionFolder, SessionRecord
from spikeprep.options import ExportOptions, option_fields
from spikeprep.pipeline import export_file
from spikeprep.readers import open_output
from spikeprep.synthetic import SynthSpec, write_session
from spikeprep.tables import column_units, markdown_table
from spikeprep.verify import verify_out

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "spikeprep"


@pytest.fixture(scope="module")
def tiny(synth_dir: Path) -> Path:
    return write_session(synth_dir / "contract.nwb", SynthSpec(n_units=20, duration=30.0, n_probes=1, seed=61))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeprep.cli", *args], capture_output=True, text=True, timeout=120)


def test_a_new_output_is_one_declaration(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dummy = outputs.table_output("dummy", "dummy.parquet",
                                 lambda s: pd.DataFrame({"unit_id": s.units.index, "twice": 2 * s.units["n_spikes"]}))
    monkeypatch.setitem(outputs.OUTPUTS, "dummy", dummy)
    r = export_file(tiny, tmp_path)
    assert r.ok, r.message
    folder = SessionFolder(tmp_path, r.session_id)
    table = open_output(tmp_path, r.session_id, "dummy")
    assert list(table["twice"]) == list(2 * spikeprep.open_units(tmp_path, r.session_id)["n_spikes"])
    assert folder.read_record().outputs["dummy"] == {"rows": 20}
    assert verify_out(tmp_path) == ([], 1)
    (folder / "dummy.parquet").unlink()
    problems, _ = verify_out(tmp_path)
    assert problems == [f"{folder / 'dummy.parquet'}: missing"]


def test_verify_names_an_unreadable_file(tiny: Path, tmp_path: Path) -> None:
    r = export_file(tiny, tmp_path)
    units = SessionFolder(tmp_path, r.session_id) / "units.parquet"
    units.write_bytes(b"PAR1 not really")
    p = cli("verify", str(tmp_path))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"{units}: unreadable" in p.stderr


def test_an_older_schema_is_flagged_and_exported_again(tiny: Path, tmp_path: Path) -> None:
    r = export_file(tiny, tmp_path)
    folder = SessionFolder(tmp_path, r.session_id)
    st = json.loads((folder / "session.json").read_text())
    st["schema_version"] = SCHEMA_VERSION - 1
    (folder / "session.json").write_text(json.dumps(st))
    problems, _ = verify_out(tmp_path)
    assert len(problems) == 1 and f"schema_version {SCHEMA_VERSION - 1}" in problems[0]
    assert spikeprep.readers.exported_sessions(tmp_path) == []
    again = export_file(tiny, tmp_path)
    assert again.status == "exported"  # not skipped
    assert folder.read_record().schema_version == SCHEMA_VERSION and verify_out(tmp_path) == ([], 1)
    assert export_file(tiny, tmp_path).status == "skipped"


def test_a_folder_from_before_versioning_reads_as_schema_0(tmp_path: Path) -> None:
    legacy = {"session_id": 5, "status": "complete", "params": {}, "source_file": "x.nwb", "source_size": 3}
    (tmp_path / "session_5").mkdir()
    (tmp_path / "session_5" / "session.json").write_text(json.dumps(legacy))
    record = SessionFolder(tmp_path, 5).read_record()
    assert isinstance(record, SessionRecord) and record.schema_version == 0 and not record.is_current
    assert not SessionFolder(tmp_path, 5).is_complete({}, None)


def test_units_parquet_carries_units_of_measure(tiny: Path, tmp_path: Path) -> None:
    r = export_file(tiny, tmp_path)
    units = column_units(SessionFolder(tmp_path, r.session_id) / "units.parquet")
    assert units["probe_vertical_position"] == "µm" and units["firing_rate"] == "Hz"
    assert units["waveform_duration"] == "ms" and units["isi_5ms_pct"] == "%" and units["unit_id"] == ""
    df = spikeprep.open_units(tmp_path, r.session_id).reset_index()
    declared = [c.name for c in FRONT_COLUMNS + DERIVED_COLUMNS]
    assert [c for c in df.columns if c in declared] == [c for c in declared if c in df.columns]
    assert list(df.columns[: len(FRONT_COLUMNS)]) == [c.name for c in FRONT_COLUMNS]
    assert list(df.columns[-len(DERIVED_COLUMNS):]) == [c.name for c in DERIVED_COLUMNS]
    for c in UNIT_COLUMNS:  # declared dtypes are what the file holds
        if c.name in df:
            col = df[c.name]
            ok = pd.api.types.is_string_dtype(col) if c.dtype == "string" else str(col.dtype) == c.dtype
            assert ok, (c.name, col.dtype)


def test_readme_column_table_is_generated_from_the_declarations() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(UNIT_COLUMNS) in readme, "regenerate with: python -m spikeprep.annotate"


def test_every_option_has_a_flag_with_help_and_default() -> None:
    for command in ("export", "run"):
        text = cli(command, "--help").stdout
        for f in option_fields():
            assert f.flag in text, (command, f.flag)
    fields = {f.name for f in option_fields()}
    assert fields == set(ExportOptions().as_dict())
    assert all(f.help for f in option_fields())


@pytest.mark.parametrize("flag, value", [("--bin-size", "0"), ("--taps", "4"), ("--threshold-ms", "-3"),
                                         ("--sigma-bins", "nan")])
def test_a_bad_option_is_one_usage_line(flag: str, value: str, tiny: Path, tmp_path: Path) -> None:
    p = cli("export", str(tiny), "--out", str(tmp_path / "o"), flag, value)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0]
    assert not (tmp_path / "o").exists()


def test_a_folder_given_as_nwb_file(tmp_path: Path) -> None:
    r = export_file(tmp_path, tmp_path / "out")
    assert r.status == "failed" and r.message == f"{tmp_path}: is a folder, not an NWB file"


# Modules by layer: a module imports only from layers below its own.
LAYERS = [
    {"errors", "jitkernels"},
    {"options", "source", "session", "smoothing"},
    {"layout", "tables", "rates", "layers", "catalog", "fetch", "stimulus", "alignment", "storechunks"},
    {"remote"},
    {"qc", "nwb", "ratestore", "summary", "legacy", "bucket"},
    {"annotate", "plots", "synthetic"},
    {"reportfigs"},
    {"outputs"},
    {"export", "readers", "verify"},
    {"align", "ecosystem", "ratestats"},
    {"alignstore", "qcreport"},
    {"report"},
    {"pipeline"},
    {"demo"},
    {"cli", "__init__"},
]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found


def test_imports_point_down() -> None:
    level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == set(level), f"place new modules in LAYERS: {modules ^ set(level)}"
    for p in PACKAGE.glob("*.py"):
        for target in _imports(p) & set(level) - {"__init__"}:
            if p.stem == "__init__":
                continue
            assert level[target] < level[p.stem], f"{p.stem} imports {target}: not downward"


def test_no_file_name_literal_outside_the_registry() -> None:
    names = re.compile(r'"(units|spike_times|stimulus|running)\.parquet"|"binned\.zarr"|"session\.json"')
    for p in PACKAGE.glob("*.py"):
        if p.stem in ("outputs", "layout"):
            continue
        code = [line for line in p.read_text().splitlines() if not line.lstrip().startswith((">>>", "..."))]
        assert not names.search("\n".join(code)), f"{p.name} names an output file; use the registry"
