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
from spikeprep.core.options import ExportOptions, option_fields
from spikeprep.export import outputs
from spikeprep.export.columns import CHANNEL_COLUMNS, DERIVED_COLUMNS, FRONT_COLUMNS, UNIT_COLUMNS
from spikeprep.export.layout import SCHEMA_VERSION, SessionFolder, SessionRecord
from spikeprep.export.readers import open_output
from spikeprep.export.tables import column_units, markdown_table
from spikeprep.export.verify import verify_out
from spikeprep.pipeline import export_file
from spikeprep.synthetic import SynthSpec, write_session

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
    assert spikeprep.export.readers.exported_sessions(tmp_path) == []
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


def test_unit_and_channel_columns_are_declared_once() -> None:
    """A unit's channel columns are the channel declarations, as its peak channel has them."""
    channel = {c.name: c for c in CHANNEL_COLUMNS}
    shared = [c for c in FRONT_COLUMNS if c.name in channel]
    assert len(shared) == 9
    for c in shared:
        assert (c.dtype, c.unit) == (channel[c.name].dtype, channel[c.name].unit)
        assert c.meaning == f"peak channel's: {channel[c.name].meaning}"
    source = (PACKAGE / "export" / "columns.py").read_text()
    assert source.count('"anterior_posterior_ccf_coordinate", "float64"') == 1


def test_readme_column_table_is_generated_from_the_declarations() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(UNIT_COLUMNS) in readme, "regenerate with: python -m spikeprep.export.columns"


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


# Packages by layer: each may import only the packages named here (and itself). The
# top-level modules (pipeline, demo, cli) may import any package, in that order.
PACKAGES = {
    "core": set(),
    "io": {"core"},
    "rates": {"core"},
    "export": {"core", "io", "rates"},
    "analysis": {"core", "io", "rates", "export"},
    "report": {"core", "io", "rates", "export", "analysis"},
    "synthetic": {"core", "io"},
}
TOP = ["__init__", "pipeline", "ecephys", "project_cache", "demo", "cliutil", "cli_lfp", "cli_metrics", "cli_units", "cli"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names (below spikeprep) of the spikeprep modules a file imports."""
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    package = [p for p in package if p != "__init__"]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join(base + node.module.split(".")))
            else:
                found.update(".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spikeprep."):
            found.add(node.module.removeprefix("spikeprep."))
    return found


def _owner(module: str) -> str:
    head = module.split(".")[0]
    return head if head in PACKAGES else module


def test_every_module_has_a_room() -> None:
    for p in PACKAGE.rglob("*.py"):
        owner = _owner(_module_name(p))
        assert owner in PACKAGES or owner in TOP, f"{p}: place it in a package of PACKAGES (or TOP)"
        assert len(p.read_text().splitlines()) <= 520, f"{p} is over ~500 lines: split it"
    for name in PACKAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
        assert "May import" in doc, f"{name}/__init__.py must say what it may import"


def test_imports_point_down() -> None:
    for p in PACKAGE.rglob("*.py"):
        me = _owner(_module_name(p))
        for target in _imports(p):
            other = _owner(target)
            if other in (me, "__version__"):  # the root package's version is everyone's
                continue
            if me in PACKAGES:
                assert other in PACKAGES[me], f"{_module_name(p)} imports {target}: {me} may import only {PACKAGES[me]}"
            elif other in TOP:
                assert TOP.index(other) < TOP.index(me), f"{me} imports {other}: not downward"


def test_the_reader_knows_no_http() -> None:
    """The NWB reader takes a Source; only io.resolve (and io.remote) know about URLs."""
    for name in ("nwb", "nwb_tables"):
        imported = _imports(PACKAGE / "io" / f"{name}.py")
        assert not imported & {"io.remote", "io.resolve", "io.download"}, (name, imported)


def test_no_file_name_literal_outside_the_registry() -> None:
    names = re.compile(r'"(units|spike_times|stimulus|running)\.parquet"|"binned\.zarr"|"session\.json"')
    for p in PACKAGE.rglob("*.py"):
        if p.stem in ("outputs", "layout"):
            continue
        code = [line for line in p.read_text().splitlines() if not line.lstrip().startswith((">>>", "..."))]
        assert not names.search("\n".join(code)), f"{p.name} names an output file; use the registry"
