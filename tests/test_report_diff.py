"""``build.py diff A B --report``: what a reader would see change between two reports, claims first, each
moved number judged against the uncertainty printed beside it (report/report_diff.py)."""

from __future__ import annotations

import json
import shutil
import subprocess

from report import report_diff as rd
from tests.conftest import SMOKE_SETS, build_cmd, in_process
from tests.q4_results import rendered, stored, synthetic_tables

# each model's three seeds: its mean, and 0.2 points either side
MEANS = {
    "lenet5": 0.900,
    "alexnet": 0.925,
    "vgg": 0.940,
    "resnet18": 0.930,
    "resnet50": 0.920,
    "resnet101": 0.921,
}
ACCS = {model: [mean, mean + 0.002, mean - 0.002] for model, mean in MEANS.items()}


def page(*blocks: str) -> str:
    return "<html><head></head><body>" + "".join(blocks) + "</body></html>"


def n(text: str, source: str = "q3 final test_acc") -> str:
    return f'<span class="n" tabindex="0" data-src="{source} (run 20261203-200031-981229-6dec)">{text}</span>'


def test_a_move_is_judged_against_the_uncertainty_printed_beside_it():
    before = page(f"<p>Accuracy {n('90.0 ± 0.5%')}.</p>", f"<p>Loss {n('0.31', 'loss')}.</p>")
    outside = rd.compare_pages(
        before, page(f"<p>Accuracy {n('91.0 ± 0.5%')}.</p>", f"<p>Loss {n('0.31', 'loss')}.</p>")
    )
    within = rd.compare_pages(
        before, page(f"<p>Accuracy {n('89.6 ± 0.4%')}.</p>", f"<p>Loss {n('0.31', 'loss')}.</p>")
    )
    unknown = rd.compare_pages(
        before, page(f"<p>Accuracy {n('90.0 ± 0.5%')}.</p>", f"<p>Loss {n('0.29', 'loss')}.</p>")
    )
    assert [(m["a"], m["b"], m["noise"]) for m in outside["numbers"]] == [
        ("90.0 ± 0.5%", "91.0 ± 0.5%", "outside")
    ]
    assert [m["noise"] for m in within["numbers"]] == ["within"]  # 0.4 ≤ the larger uncertainty, 0.5
    assert [(m["source"], m["noise"]) for m in unknown["numbers"]] == [("loss", "unknown")]
    assert not outside["claims"] and not outside["sentences"]  # the same sentence with another number


def test_a_flipped_verdict_comes_first_and_a_re_ranked_row_is_not_a_change():
    row = lambda name, acc: f"<tr><td>{name}</td><td>{n(acc, f'{name} mean test_acc')}</td></tr>"  # noqa: E731
    before = page(
        '<p><span class="v" data-src="Holm p = 0.01">A is more accurate than B.</span></p>',
        f"<table>{row('A', '95.0%')}{row('B', '94.0%')}</table>",
        "<p>Run on a CPU.</p>",
    )
    after = page(
        '<p><span class="v" data-src="Holm p = 0.4">A and B are tied.</span></p>',
        f"<table>{row('B', '95.5%')}{row('A', '95.0%')}</table>",
        "<p>Run on a GPU.</p>",
    )
    changes = rd.compare_pages(before, after)
    assert [(c["a"], c["b"]) for c in changes["claims"]] == [
        ("A is more accurate than B.", "A and B are tied.")
    ]
    assert [(c["a"], c["b"]) for c in changes["sentences"]] == [("Run on a CPU.", "Run on a GPU.")]
    assert [(m["source"], m["a"], m["b"]) for m in changes["numbers"]] == [
        ("B mean test_acc", "94.0%", "95.5%")
    ]
    text = rd.as_text(changes, "A", "B")
    assert (
        text.index("Claims that flipped") < text.index("Sentences that changed") < text.index("Numbers that")
    )
    marked = rd.as_html(after, changes, "A", "B")
    assert '<p data-diff="claim" title="was: A is more accurate than B.">' in marked
    assert 'data-diff="number-unknown" title="was: 94.0%"' in marked and "diff-summary" in marked
    assert [b.text for b in rd.blocks(marked)] == [b.text for b in rd.blocks(after)]  # the page is intact


def test_one_changed_q4_seed_names_exactly_the_sentences_and_numbers_that_moved(tmp_path):
    """The issue's case on a synthetic store: ResNet-18's first seed gains two points, which erases
    VGG-16-BN's significant lead; every block whose text changed is named, nothing else, and every moved
    number is ResNet-18's or a comparison with it."""
    page_a, _ = rendered(stored(tmp_path / "a", synthetic_tables(ACCS), seeds=3))
    page_b, _ = rendered(
        stored(tmp_path / "b", synthetic_tables({**ACCS, "resnet18": [0.95, 0.932, 0.928]}), seeds=3)
    )
    changes = rd.compare_pages(page_a, page_b)
    said = lambda bs: {rd.RUN_ID.sub("RUN", b.text) for b in bs}  # noqa: E731
    text_a, text_b = said(rd.blocks(page_a)), said(rd.blocks(page_b))
    named = {
        rd.RUN_ID.sub("RUN", t) for c in changes["claims"] + changes["sentences"] for t in (c["b"],) if t
    }
    named |= {rd.RUN_ID.sub("RUN", m["sentence"]) for m in changes["numbers"]}
    assert named == text_b - text_a
    assert any("ResNet-18 is not significantly below it" in c["b"] for c in changes["claims"])
    resnet18 = ("ResNet-18", "model=resnet18")  # its title, or its name in the store's rows
    assert changes["numbers"] and all(any(n in m["source"] for n in resnet18) for m in changes["numbers"]), (
        changes["numbers"]
    )
    mean = [
        m for m in changes["numbers"] if m["source"].startswith("Test accuracy: mean ± standard deviation")
    ]
    assert [(m["a"], m["b"], m["noise"]) for m in mean] == [("93.00 ± 0.20%", "93.7 ± 1.2%", "within")]


def test_the_command_compares_two_stores_and_refuses_a_run_id_in_one_line(smoke_build, data_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(smoke_build.store, other)
    base = ["--profile", "smoke", "--store", str(smoke_build.store), "--data-dir", str(data_dir), *SMOKE_SETS]
    base += ["--out", str(tmp_path / "out")]
    html = tmp_path / "diff.html"
    done = subprocess.run(
        build_cmd("diff", str(other), "--report", "--json", "--html", str(html), *base),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    changes = json.loads(done.stdout)
    assert (changes["claims"], changes["sentences"], changes["numbers"]) == ([], [], [])
    assert "diff-summary" in html.read_text(encoding="utf-8")
    # stale by a setting on both sides: their sentences advise the same rerun (this command's --store and
    # --set), so the same results in another folder differ in nothing
    command = build_cmd("diff", str(other), "--report", "--json", *base, "--set", "q1.segments=123")
    stale = subprocess.run(command, capture_output=True, text=True, timeout=300)
    changes = json.loads(stale.stdout)
    assert (changes["claims"], changes["sentences"], changes["numbers"]) == ([], [], []), changes["sentences"]
    refused = subprocess.run(
        build_cmd("diff", "20261203-200031-981229-6dec", "--report", *base), capture_output=True, text=True
    )
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and line == refused.stderr.strip().splitlines()[-1], refused.stderr
    assert "neither a store folder nor a bundle" in line and "drop --report" in line
    bare = subprocess.run(build_cmd("diff", "--report", *base), capture_output=True, text=True)
    assert bare.returncode == 2 and "diff --report compares two reports and needs A" in bare.stderr


def test_blocks_read_math_as_its_latex_and_tables_cell_by_cell():
    blocks = rd.blocks(
        page(
            '<p>With <span class="math inline">'
            '<span class="math" role="math" aria-label="\\eta">η</span></span>.</p>',
            f"<table><tr><th>Model</th><th>Acc</th></tr><tr><td>VGG</td><td>{n('94.1%')}</td></tr></table>",
        )
    )
    assert [(b.text, b.shape) for b in blocks] == [
        ("With $\\eta$.", "With $\\eta$."),
        ("Model | Acc", "Model | Acc"),
        ("VGG | 94.1%", "VGG | " + rd.PLACEHOLDER),
    ]
    assert rd.value("1.2×10⁻³") == (0.0012, None) and rd.value("−3.5 ± 0.2") == (-3.5, 0.2)


def test_the_marked_page_never_replaces_a_file_or_folder_it_did_not_write(tmp_path):
    """--html is checked before either report renders: a file diff did not write, a folder, or a path
    under a file is refused in one line with nothing changed; its own earlier page may be replaced."""
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>", encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    base = ["--store", str(tmp_path / "s"), "--out", str(tmp_path / "out")]
    cases = {
        mine: "is a file this command did not write; give a new file name, or delete it first",
        tmp_path: "is a folder; give the file to write, e.g. --html",
        blocker / "diff.html": f"cannot be written ({blocker} is a file); give a file in a writable folder",
    }
    for html, said in cases.items():
        done = in_process(build_cmd("diff", str(tmp_path / "a"), "--report", "--html", str(html), *base))
        errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
        assert done.returncode == 2 and len(errors) == 1 and said in errors[0], done.stdout
    assert mine.read_text(encoding="utf-8") == "<p>my notes</p>" and not (tmp_path / "out").exists()
    earlier = tmp_path / "diff.html"  # a page an earlier diff wrote gets past the check (to the next error)
    earlier.write_text(f'<div class="{rd.MARK}">old</div>', encoding="utf-8")
    done = in_process(build_cmd("diff", str(tmp_path / "a"), "--report", "--html", str(earlier), *base))
    assert "--html" not in done.stdout and "neither a store folder nor a bundle" in done.stdout, done.stdout
