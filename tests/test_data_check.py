"""The early data check: a missing dataset is one line before torch is imported, for the dataset each
profile and --set chooses, from the download hosts torchvision uses (issue 17: each test failed before
its fix)."""

from __future__ import annotations

from typer.testing import CliRunner

import build

runner = CliRunner()


def _invoke(*args: str, **kwargs):
    return runner.invoke(build.app, list(args), **kwargs)


_WITHOUT_TORCH = """
import sys
sys.path.insert(0, {root!r})
import build
sys.argv = ["build.py", *{args!r}]
try:
    build.main()
finally:
    print("torch imported" if "torch" in sys.modules else "torch not imported")
"""


def test_a_missing_dataset_is_reported_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    empty = tmp_path / "data"
    empty.mkdir()
    args = ["run", "q4", "--profile", "smoke", "--data-dir", str(empty), "--store", str(tmp_path / "r")]
    script = tmp_path / "check.py"
    script.write_text(_WITHOUT_TORCH.format(root=str(ROOT), args=args))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"SVHN not found in {empty / 'SVHN'} (missing train_32x32.mat)" in proc.stderr
    assert "--set q4.dataset=fashion-mnist" in proc.stderr
    assert proc.stdout.strip() == "torch not imported"


def test_the_early_data_check_reads_the_dataset_each_profile_and_override_chooses(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    plain = _invoke(
        "run", "q3", "--profile", "full", "--data-dir", str(empty), "--store", str(tmp_path / "r")
    )
    assert plain.exit_code == 2 and f"error: MNIST not found in {empty / 'MNIST'}" in " ".join(
        plain.output.split()
    )
    chosen = _invoke(
        "run", "q3", "--profile", "smoke", "--data-dir", str(empty), "--store", str(tmp_path / "r"),
        "--set", "q3.dataset=fashion-mnist",
    )  # fmt: skip
    said = " ".join(chosen.output.split())
    assert chosen.exit_code == 2 and f"error: Fashion-MNIST not found in {empty / 'FashionMNIST'}" in said


def test_the_download_hosts_are_torchvision_s():
    """``experiments/datasets.py`` lists them without importing torch; they must not drift."""
    import torchvision.datasets as tvd

    from experiments.datasets import LAYOUTS

    assert LAYOUTS["mnist"].urls == tuple(tvd.MNIST.mirrors)
    assert LAYOUTS["fashion-mnist"].urls == tuple(tvd.FashionMNIST.mirrors)
    assert LAYOUTS["svhn"].urls == tuple(tvd.SVHN.split_list[s][0] for s in ("train", "test"))
    assert LAYOUTS["cifar10"].urls == (tvd.CIFAR10.url,)
