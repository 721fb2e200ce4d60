"""`python -m tinytape report`: results files printed as markdown, and the docs' generated
blocks rewritten from the results files they name (and checked with --check)."""

from __future__ import annotations

import pytest

from tinytape.cli import main
from tinytape.experiments.protocol import Protocol, paired_interval, target, write_results


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    (folder / "results").mkdir(parents=True)
    iv = paired_interval([0.9, 0.8, 0.85], [0.7, 0.62, 0.66])
    write_results(folder / "results", "demo", {}, Protocol({"test": 10}, [0, 1, 2], {}), {},
                  [target("a - b", iv, 0.0)],
                  {"main": {"caption": "accuracy", "columns": ["arm", "acc"],
                            "rows": [["a", 0.85], ["b", 0.66]]}})
    (folder / "results" / "results.json").rename(folder / "results" / "demo.json")
    page = folder / "page.md"
    page.write_text("# Page\n\ntext before\n\n<!-- results: results/demo.json main -->\n"
                    "| stale | table |\n<!-- /results -->\n\nbetween\n\n"
                    "<!-- results: results/demo.json targets -->\n<!-- /results -->\nend\n")
    return folder


def test_docs_blocks_are_generated_and_checked(docs, capsys):
    page = docs / "page.md"
    assert main(["report", "--docs", str(docs), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["report", "--docs", str(docs)]) == 0
    text = page.read_text()
    assert "| stale | table |" not in text
    assert "Accuracy:\n\n| arm | acc |\n|---|---|\n| a | 0.850 |\n| b | 0.660 |\n" in text
    assert "| a - b | 0.190 | [" in text and "| met |" in text
    assert text.startswith("# Page\n\ntext before\n") and text.endswith("\nend\n")
    assert "between" in text
    assert main(["report", "--docs", str(docs), "--check"]) == 0   # now up to date
    assert main(["report", "--docs", str(docs)]) == 0
    assert page.read_text() == text                                 # idempotent


def test_printing_a_run_and_bad_blocks(docs, capsys):
    assert main(["report", str(docs / "results" / "demo.json")]) == 0
    out = capsys.readouterr().out
    assert "## demo" in out and "Protocol: splits: test 10; 3 seeds (0-2)" in out
    (docs / "bad.md").write_text("<!-- results: results/demo.json nosuch -->\n<!-- /results -->\n")
    assert main(["report", "--docs", str(docs)]) == 2
    assert "no part 'nosuch'" in capsys.readouterr().err
    (docs / "bad.md").write_text("<!-- results: results/missing.json -->\n<!-- /results -->\n")
    assert main(["report", "--docs", str(docs)]) == 2
    assert "no such results file" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert main(["report", str(docs / "page.md")]) == 2  # not a results file


def test_the_committed_docs_are_up_to_date(capsys):
    """The docs' tables are generated from the committed results files: regenerating them
    changes nothing."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "docs"
    assert main(["report", "--docs", str(root), "--check"]) == 0, capsys.readouterr().err
