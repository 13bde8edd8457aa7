"""nbval on the analysts' notebooks and the review app notebook, against the default demo.

The committed notebooks carry outputs produced on the default demo database
(``payops demo --as-of 2026-11-20``: seed 42, 400 customers, 90 days); nbval re-runs each
notebook on a fresh copy of that demo and compares every output. The demo is
deterministic, so dates and amounts are compared as they are; only what legitimately varies
between runs is sanitised (memory addresses in reprs, widget model ids, request ages).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
DEMO_AS_OF = date(2026, 11, 20)  # the --as-of the committed outputs were produced with
KERNEL = "payops"
OWN = ("explore.ipynb", "customers.ipynb", "refund_review.ipynb")

SANITIZE = r"""
[memory addresses in object reprs]
regex: at 0x[0-9a-fA-F]+
replace: at 0xADDRESS

[widget model ids]
regex: [0-9a-f]{32}
replace: MODEL-ID

[request ages]
regex: \b\d+ d \d+ h\b|\b\d+ d\b|\b\d+ h\b|< 1 h
replace: AGE

[table ids: a digest of the table's content, ages included, so they change with the ages]
regex: T_payops[0-9a-f]{10}
replace: T_payopsID
"""


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    from payops.demo import build_demo

    path = tmp_path_factory.mktemp("nbval") / "payops.duckdb"
    build_demo(path, seed=42, as_of=DEMO_AS_OF, replace=True, progress=False)
    return path


@pytest.mark.parametrize("name", OWN)
def test_notebook_is_committed_with_outputs_and_the_project_kernel(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs for c in code), "run the notebook on the demo and commit its outputs"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    text = "\n".join(c.source for c in nb.cells)
    assert ".duckdb" not in text  # the database comes from the settings (PAYOPS_DB)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.slow
@pytest.mark.parametrize("name", OWN)
def test_nbval(name, demo_db, tmp_path):
    db = tmp_path / "payops.duckdb"
    shutil.copyfile(demo_db, db)  # compute_daily writes: every notebook gets its own copy
    sanitize = tmp_path / "sanitize.cfg"
    sanitize.write_text(SANITIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_"))}
    env.update(PAYOPS_DB=str(db), PAYOPS_USER="ana", PAYOPS_TIMEZONE="UTC")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", str(sanitize), "--nbval-cell-timeout", "180",
         str(NOTEBOOKS / name)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout


def regenerate(names: tuple[str, ...] = OWN) -> None:
    """Re-execute the notebooks in place on a fresh default demo (run after the demo data changes).

    ``.venv/bin/python tests/test_notebooks.py --regenerate [explore.ipynb ...]``
    """
    import tempfile

    from nbconvert.preprocessors import ExecutePreprocessor

    from payops.demo import build_demo

    with tempfile.TemporaryDirectory(prefix="payops-nb-") as tmp:
        demo = Path(tmp) / "demo.duckdb"
        build_demo(demo, seed=42, as_of=DEMO_AS_OF, replace=True, progress=False)
        for name in names:
            db = Path(tmp) / "payops.duckdb"
            shutil.copyfile(demo, db)
            for key in [k for k in os.environ if k.startswith(("PAYOPS_", "STRIPE_"))]:
                del os.environ[key]
            os.environ.update(PAYOPS_DB=str(db), PAYOPS_USER="ana", PAYOPS_TIMEZONE="UTC")
            nb = nbformat.read(NOTEBOOKS / name, as_version=4)
            ExecutePreprocessor(kernel_name=KERNEL, timeout=300).preprocess(nb, {"metadata": {"path": str(NOTEBOOKS)}})
            nb.metadata.pop("widgets", None)  # widget state: large, and nbval does not use it
            nbformat.write(nb, NOTEBOOKS / name)
            print(f"executed {name}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--regenerate"]:
        sys.exit("usage: python tests/test_notebooks.py --regenerate [NOTEBOOK.ipynb ...]")
    regenerate(tuple(sys.argv[2:]) or OWN)
