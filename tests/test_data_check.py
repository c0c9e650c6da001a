"""The early data check: a missing dataset, a damaged label file or a setting asking for more images than
the dataset holds is one line before torch is imported, for the dataset each profile and --set chooses,
from the download hosts torchvision uses. Each test failed before its fix (issue 17's: a missing
dataset; 2026-12-07's: sizes and damaged label files)."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest
from typer.testing import CliRunner

import build
from experiments import datasets
from report.core.errors import ConfigError

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
    cifar = {name for name, _ in tvd.CIFAR10.train_list + tvd.CIFAR10.test_list} | {
        tvd.CIFAR10.meta["filename"]
    }
    assert {f.rsplit("/", 1)[1] for f in LAYOUTS["cifar10"].files} == cifar  # every file it loads


def test_a_setting_asking_for_more_images_than_the_data_hold_stops_before_anything_trains(data_dir, tmp_path):
    """Q3's sizes against the MNIST stand-in (4,000 training, 1,000 test images): one line, exit 2, before
    torch is imported and before Q1, which runs first, has trained; the advised sizes pass the check, and
    Q3 applies the same rule to the images it loads."""
    import subprocess
    import sys

    from experiments import q3
    from experiments.configs.q3 import PROFILES
    from tests.conftest import ROOT

    store = tmp_path / "r"
    args = ["run", "q1", "q3", "--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store),
            "--set", "q3.n_train=3500"]  # fmt: skip  # the smoke profile holds out 1,000 for validation
    script = tmp_path / "check.py"
    script.write_text(_WITHOUT_TORCH.format(root=str(ROOT), args=args))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    error = (
        "q3.n_train + q3.n_val = 4500 exceed the 4000 training images of MNIST: lower them to at most 4000"
    )
    assert proc.returncode == 2 and error in " ".join(proc.stderr.split()), proc.stderr
    assert proc.stdout.strip() == "torch not imported" and not store.exists()
    too_many = dataclasses.replace(PROFILES["smoke"], n_train=3500)
    with pytest.raises(ConfigError, match=re.escape(error)):  # the experiment's own check, on loaded data
        q3.load_splits(too_many, data_dir, 0, "cpu")
    status = _invoke("status", *args[3:])  # status never advises a command that run refuses
    assert status.exit_code == 2 and error in " ".join(status.output.split()), status.output
    fixed = dataclasses.replace(PROFILES["smoke"], n_train=3000)  # at most 4000 together, as advised
    datasets.check_before_torch({"q3": fixed}, data_dir)
    with pytest.raises(ConfigError, match="q3.n_test=1001 exceeds the 1000 test images of MNIST"):
        datasets.check_before_torch({"q3": dataclasses.replace(fixed, n_test=1001)}, data_dir)


def test_svhn_split_sizes_come_from_the_mat_headers_and_bound_q4s_settings(tmp_path):
    from tests.q4_results import write_svhn

    write_svhn(tmp_path, 40, 30)
    assert datasets.split_sizes("svhn", tmp_path) == (40, 30)
    base = ["run", "q4", "--profile", "smoke", "--data-dir", str(tmp_path), "--store", str(tmp_path / "r")]
    cases = {
        "q4.val_size=40": "q4.val_size=40 leaves none of the 40 training images of SVHN to train on: lower "
        "q4.val_size",
        "q4.train_subset=33": "q4.train_subset=33 exceeds the 32 training images of SVHN left after "
        "q4.val_size=8: lower one of them (q4.train_subset=0 takes all that are left)",
        "q4.test_subset=31": "q4.test_subset=31 exceeds the 30 test images of SVHN: lower it, or 0 for all",
    }
    for setting, error in cases.items():
        result = _invoke(*base, "--set", setting)
        assert result.exit_code == 2 and error in " ".join(result.output.split()), result.output
    one_batch = _invoke(
        *base, "--set", "q4.train_subset=0", "--set", "q4.val_size=30", "--set", "q4.batch_size=16"
    )
    error = (
        "q4.batch_size=16 exceeds the 10 training images of SVHN left after q4.val_size=30: lower one of them"
    )
    assert one_batch.exit_code == 2 and error in " ".join(one_batch.output.split()), one_batch.output
    assert not (tmp_path / "r").exists()


def test_a_dataset_still_to_download_is_checked_against_the_download_s_sizes(tmp_path, monkeypatch):
    from experiments.configs.q4 import PROFILES

    monkeypatch.setattr(datasets, "reachable", lambda url, timeout=3.0: True)  # as with internet
    asked = dataclasses.replace(PROFILES["quick"], dataset="fashion-mnist", test_subset=20_000)
    with pytest.raises(
        ConfigError, match="q4.test_subset=20000 exceeds the 10000 test images of Fashion-MNIST"
    ):
        datasets.check_before_torch({"q4": asked}, tmp_path)
    datasets.check_before_torch({"q4": dataclasses.replace(asked, test_subset=10_000)}, tmp_path)


def test_a_damaged_label_file_is_named_before_anything_trains(data_dir, tmp_path):
    """A label file cut short (or a web page saved under its name) is named with the fix before torch is
    imported, not read as a dataset of 0 or of 1.8 billion images; ``status`` leaves it to ``run`` and
    still shows every experiment."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    labels = copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    args = ["run", "q1", "--profile", "smoke", "--data-dir", str(copy), "--store", str(tmp_path / "r")]
    script = tmp_path / "check.py"
    script.write_text(_WITHOUT_TORCH.format(root=str(ROOT), args=args))
    for damaged in (labels.read_bytes()[:6], b"<!DOCTYPE html><html>not found</html>"):
        labels.write_bytes(damaged)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
        said = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and proc.stdout.strip() == "torch not imported", proc.stderr
        assert (
            f"error: {labels} is not a complete IDX label file; remove it and the build downloads MNIST"
            in said
        )
        status = _invoke("status", *args[2:])
        assert status.exit_code == 0 and "q3 │ missing" in " ".join(status.output.split()), status.output
    assert not (tmp_path / "r").exists()


def test_sizes_from_report_toml_name_their_lines(data_dir, tmp_path, monkeypatch):
    """A rule between two settings names the report.toml line of each that came from there."""
    store = tmp_path / "r"
    (tmp_path / "report.toml").write_text("[set.q3]\nn_test = 5000\nn_val = 3900\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPORT_SETTINGS")  # found in the current folder, as a user's is
    run = ["run", "q3", "--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store)]
    alone = " ".join(_invoke(*run, "--set", "q3.n_val=1000").output.split())
    assert (
        "report.toml:2: q3.n_test=5000 exceeds the 1000 test images of MNIST: lower it to at most 1000"
        in alone
    )
    pair = " ".join(_invoke(*run, "--set", "q3.n_test=1000", "--set", "q3.n_train=2000").output.split())
    assert "report.toml:3: q3.n_train + q3.n_val = 5900 exceed the 4000 training images" in pair, pair
    assert not store.exists()
    # a setting an error only mentions (an example in its advice) is not blamed on report.toml
    (tmp_path / "report.toml").write_text("[set.q3]\nsweep_epochs = 5\n")
    unrelated = _invoke("status", "q3", "--set", "foo")
    assert unrelated.exit_code == 2 and "report.toml" not in unrelated.output.split("error:")[1], (
        unrelated.output
    )


@pytest.mark.parametrize("exp", ["q1", "q2"])
def test_more_samples_than_the_two_digits_have_stops_before_anything_trains(exp, data_dir, tmp_path):
    """Q1's and Q2's samples come from the images of their two digits: asking for more was cut to them
    while the record kept the number asked. Now one line before torch is imported, the advised number
    passes, and the experiment applies the same rule to the labels it loads."""
    import subprocess
    import sys

    import torch

    from experiments import configs, convexity
    from tests.conftest import ROOT

    have = sum(datasets.class_counts("mnist", data_dir)[d] for d in (0, 1))  # the default digits 0 and 1
    labels = (data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte").read_bytes()[8:]
    assert have == labels.count(0) + labels.count(1) and 0 < have < 4000
    store = tmp_path / "r"
    args = ["run", exp, "--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store),
            "--set", f"{exp}.samples={have + 1}"]  # fmt: skip
    script = tmp_path / "check.py"
    script.write_text(_WITHOUT_TORCH.format(root=str(ROOT), args=args))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    error = (
        f"{exp}.samples={have + 1} exceeds the {have} training images of digits 0 and 1 in MNIST: lower it "
    )
    error += f"to at most {have}"
    assert proc.returncode == 2 and error in " ".join(proc.stderr.split()), proc.stderr
    assert proc.stdout.strip() == "torch not imported" and not store.exists()
    status = _invoke("status", *args[2:])
    assert status.exit_code == 2 and error in " ".join(status.output.split()), status.output
    smoke = configs.get(exp).PROFILES["smoke"]
    datasets.check_before_torch({exp: dataclasses.replace(smoke, samples=have)}, data_dir)  # as advised
    with pytest.raises(ConfigError, match=re.escape(error)):  # the experiment's own check, on loaded labels
        convexity.binary_task(data_dir, dataclasses.replace(smoke, samples=have + 1), 0, torch.device("cpu"))


def test_before_the_download_the_samples_rule_uses_the_download_s_images_per_digit(tmp_path, monkeypatch):
    """With MNIST still to download, the rule once passed, and Q2's samples failed only after Q1 trained."""
    from experiments import configs

    monkeypatch.setattr(datasets, "reachable", lambda url, timeout=3.0: True)  # as with internet
    asked = dataclasses.replace(configs.get("q2").PROFILES["full"], samples=12_666)
    error = "q2.samples=12666 exceeds the 12665 training images of digits 0 and 1 in MNIST"
    with pytest.raises(ConfigError, match=re.escape(error)):
        datasets.check_before_torch({"q2": asked}, tmp_path)
    datasets.check_before_torch({"q2": dataclasses.replace(asked, samples=12_665)}, tmp_path)
