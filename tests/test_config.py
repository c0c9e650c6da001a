import math
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

import pytest

from experiments import configs
from report.core.config import apply_overrides, check_profile, default_profile, parse_overrides
from report.core.errors import ConfigError
from tests.conftest import ROOT


@dataclass(frozen=True)
class Cfg:
    epochs: int = 2
    lr: float = 0.1
    dataset: Literal["svhn", "mnist"] = "svhn"
    widths: tuple[int, ...] = (1, 2)
    augment: bool = True

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError("q9.epochs must be at least 1")


def test_parse_overrides_groups_by_experiment():
    assert parse_overrides(["q3.epochs=5", "q3.lr=0.01", "q4.dataset=mnist"]) == {
        "q3": {"epochs": "5", "lr": "0.01"},
        "q4": {"dataset": "mnist"},
    }


@pytest.mark.parametrize("bad", ["q3epochs=5", "q3.epochs", "=5", ".x=1"])
def test_parse_overrides_rejects_malformed(bad):
    with pytest.raises(ConfigError, match="EXPERIMENT.FIELD=VALUE"):
        parse_overrides([bad])


def test_apply_overrides_converts_each_type():
    cfg = apply_overrides(
        "q9", Cfg(), {"epochs": "5", "lr": "1e-3", "dataset": "mnist", "widths": "4,8,16", "augment": "false"}
    )
    assert cfg == Cfg(epochs=5, lr=1e-3, dataset="mnist", widths=(4, 8, 16), augment=False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epoch": "5"}, "has no setting 'epoch'; valid: augment, dataset, epochs, lr, widths"),
        ({"epochs": "five"}, "expected an integer"),
        ({"lr": "fast"}, "expected a number"),
        ({"dataset": "imagenet"}, "choose one of svhn, mnist"),
        ({"augment": "maybe"}, "expected true or false"),
        ({"epochs": "0"}, "must be at least 1"),
        ({"widths": "4,8,4"}, "q9.widths: 4 is given twice; give each value once"),
        ({"widths": "4,,8"}, "give a comma-separated list without empty items, e.g. q9.widths=1,2"),
        ({"widths": ""}, "give a comma-separated list without empty items, e.g. q9.widths=1,2"),
    ],
)
def test_apply_overrides_rejects_bad_values_with_one_line(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        apply_overrides("q9", Cfg(), raw)
    assert "\n" not in str(err.value)


def test_profiles(monkeypatch):
    assert check_profile("smoke") == "smoke"
    with pytest.raises(ConfigError, match="unknown profile 'huge': choose one of smoke, quick, full"):
        check_profile("huge")
    monkeypatch.setenv("REPORT_PROFILE", "smoke")
    assert default_profile() == "smoke"
    monkeypatch.delenv("REPORT_PROFILE")
    assert default_profile() == "full", "the whole study, whatever the machine (tests/test_reference.py)"


def test_every_numeric_setting_declares_a_bounded_range():
    """The one range rule needs a range on every int and float field of every experiment's ``Config``."""
    import dataclasses
    import typing

    from report.core import manifest
    from report.core.config import Range, field_hints

    for name in manifest.load().names:
        config = configs.get(name).Config
        hints = field_hints(name)
        for f in dataclasses.fields(config):
            hint = hints[f.name]
            base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
            item = (typing.get_args(base) or (base,))[0] if typing.get_origin(base) is tuple else base
            declared = next((a for a in typing.get_args(hint) if isinstance(a, Range)), None)
            if item in (int, float):
                assert declared is not None and math.isfinite(declared.hi), f"{name}.{f.name} has no bound"


def test_the_settings_layer_reads_configs_without_torch():
    """``report.toml``, ``--set`` and freshness read each experiment's real ``Config`` from its config
    module, and importing every one of them (and checking a value) never imports torch."""
    code = (
        "import sys\n"
        "from report.core import manifest\n"
        "from report.core.config import canonical, profile_config\n"
        "for name in manifest.load().names:\n"
        "    profile_config(name, 'full')\n"
        "assert canonical('q3', 'lrs', '1e-3, 0.1', '--set q3.lrs') == '0.001,0.1'\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_an_experiment_without_a_config_module_is_one_line_naming_the_file():
    with pytest.raises(ConfigError, match=r"experiments/configs/q9\.py: no such file") as err:
        configs.get("q9")
    assert "\n" not in str(err.value)


def test_a_range_in_the_settings_file_names_the_file_and_line(tmp_path, monkeypatch):
    from report.core import settings

    path = tmp_path / "report.toml"
    path.write_text('profile = "smoke"\n\n[set.q4]\nlabel_smoothing = 5\n')
    with pytest.raises(
        ConfigError, match=r"report.toml:4: label_smoothing=5.0: give a finite number in \[0, 1\)"
    ):
        settings.load(path)


def test_the_q4_config_chooses_from_the_model_registry_in_its_order():
    from experiments import models

    assert configs.get("q4").MODELS == models.NAMES


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_status_checks_settings_as_run_resolves_them(profile):
    """``status`` validates --set from the torch-free configs (report.steps.configs); ``run`` resolves them
    in experiments.runner, which imports torch: both give the same configs, a stand-in's included."""
    from experiments import runner
    from report import steps
    from report.core.freshness import Request

    sets = {"q1": {"segments": "300"}, "q3": {"sweep_epochs": "2"}, "q4": {"models": "lenet5,resnet18"}}
    names = ["q1", "q2", "q3", "q4"]
    for stand_ins in (frozenset(), frozenset({"q4"})):
        request = Request(profile, sets, stand_ins=stand_ins)
        resolved = {name: config for name, _, config in runner.resolve(names, request)}
        assert steps.configs(request, names) == resolved


def test_the_settings_a_stale_result_names_are_the_ones_that_changed() -> None:
    """What status and the report's stale flags name: each setting the run used that this request would
    change, and the seed; nothing between a stand-in run and the study, whose settings differ by design, and
    a stored study where this machine would run a stand-in against the study this request asks for."""
    import dataclasses

    from report.core.config import config_dict, profile_config
    from report.core.freshness import Request
    from report.diff import config_changes

    made = {"config": config_dict(profile_config("q1", "smoke")), "seed": 0}
    asked = Request("smoke", {"q1": {"points": "7"}}, seed=2)
    was = made["config"]["points"]
    assert config_changes(made, asked, "q1") == [f"points {was} → 7", "seed 0 → 2"]
    assert config_changes(made, Request("smoke"), "q1") == []
    study = {"config": dataclasses.asdict(profile_config("q4", "full")), "seed": 0}
    on_cpu = Request("full", stand_ins=frozenset({"q4"}))  # a machine without a GPU asks for the stand-in
    assert config_changes(study, on_cpu, "q4") == []
    study["config"]["dataset"] = "fashion-mnist"  # the reference's study: what the reader is told changed
    assert config_changes(study, on_cpu, "q4") == ["dataset fashion-mnist → svhn"]
    stand_in = {"config": dataclasses.asdict(profile_config("q4", "quick")), "seed": 0, "stand_in": True}
    assert config_changes(stand_in, Request("full"), "q4") == []  # a quick run in the study's place


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("q4.models=lenet5,lenet5", "--set q4.models: lenet5 is given twice; give each value once"),
        ("q3.lrs=0.1,1e-1", "--set q3.lrs: 0.1 is given twice; give each value once"),
        ("q4.models=", "e.g. q4.models=lenet5,alexnet,vgg,resnet18,resnet50,resnet101"),
        ("q1.digits=3,3", "--set q1.digits: 3 is given twice; give each value once, e.g. q1.digits=0,1"),
    ],
)
def test_a_list_that_repeats_a_value_is_refused_before_anything_trains(setting, said, data_dir, tmp_path):
    """A repeated model or rate trained and stored the same point twice, and the report then refused the
    store with advice (--force) that repeated it; an empty list's example is the setting's own default."""
    from typer.testing import CliRunner

    import build

    store = tmp_path / "r"
    where = ["--profile", "smoke", "--data-dir", str(data_dir), "--store", str(store)]
    for command in ("status", "run"):
        result = CliRunner().invoke(build.app, [command, *where, "--set", setting])
        assert result.exit_code == 2 and said in result.output.replace("\n", ""), result.output
    assert not store.exists()


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("lrs=0.01", "q3.lrs: give two or more learning rates (the study compares them), e.g. "
                     "q3.lrs=1e-3,1e-2"),
        ("batch_sizes=128", "q3.batch_sizes: give two or more batch sizes (the study compares them), e.g. "
         "q3.batch_sizes=128,512"),
    ],
)  # fmt: skip
def test_q3_compares_two_values_or_more_of_what_it_tunes(setting, said):
    """One batch size gave "rises from 97.80% at batch 128 to 97.80% at batch 128"; one rate, "a logarithmic
    grid from 1×10⁻³ to 1×10⁻³": the study compares values, so a single one is refused before training. The
    example each error gives is accepted."""
    from experiments.configs.q3 import PROFILES

    key, value = setting.split("=")
    with pytest.raises(ConfigError, match=re.escape(said)):
        apply_overrides("q3", PROFILES["full"], {key: value}).validate()
    example = said.rsplit("e.g. q3.", 1)[1].split("=")
    apply_overrides("q3", PROFILES["full"], {example[0]: example[1]}).validate()


def test_a_q2_network_whose_hessians_cannot_be_held_is_refused_before_training():
    """q2.hidden=1000 at q2.pool=1, both in range, asked torch for a 4.9 TB Hessian mid-run."""
    from experiments.configs.q2 import PROFILES

    with pytest.raises(ConfigError, match=re.escape("gives the network 786,001 parameters")) as err:
        apply_overrides("q2", PROFILES["full"], {"hidden": "1000", "pool": "1"}).validate()
    assert "lower q2.hidden or raise q2.pool to at most 10,000 parameters" in str(err.value)
    apply_overrides("q2", PROFILES["full"], {"hidden": "4", "pool": "1"}).validate()  # the example it gives
