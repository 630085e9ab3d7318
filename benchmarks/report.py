"""The visual report of a full-scale session (issue 16): `spikeprep report` on the export of
2,800 units x 9,600 s. Goals: <= 30 s and <= 2 GB peak.
Run: python benchmarks/report.py
"""

from __future__ import annotations

import shutil

from common import DATA, full_scale_session, measure

EXPORT = """
from spikeprep.pipeline import export_file
from spikeprep.report.qc import run_qc
r = export_file({path!r}, {out!r})
assert r.ok, r.message
run_qc({out!r}, echo=lambda line: None)
RESULT = r.session_id
"""
REPORT = """
from spikeprep.report.pages import write_reports
pages = write_reports({out!r})
RESULT = [p.stat().st_size for p in pages]
"""


def main() -> None:
    path = str(full_scale_session())
    out = DATA / "report_out"
    shutil.rmtree(out, ignore_errors=True)
    measure(EXPORT.format(path=path, out=str(out)), "export + QC (setup)")
    r = measure(REPORT.format(out=str(out)), "spikeprep report (session page + index)")
    print(f"    pages {[f'{s / 1e6:.1f} MB' for s in r['value']]}  (goal <= 30 s, <= 2 GB)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
