"""Every number a user can set has the bound its meaning implies (issue #32 point 4): `epochs: -1` used to train
for 0 steps and save an RM with random heads. A new numeric option without a bound fails the first test; the bounds
show in --help; a value outside them is one error line naming the file and field (or the flag, and the item of a
list). The table in test_cli_bad_input_one_error_line.py gives every command with a number one out of range."""
from __future__ import annotations

import importlib
import pkgutil
import typing

import pytest

from core.config import Config, ConfigError, load_config

PACKAGES = ("core", "annotation", "hpc_rm", "policy", "pipeline")


def all_config_classes() -> set[type[Config]]:
    for package in PACKAGES:
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    found, todo = set(), [Config]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in PACKAGES:  # not a config a test made up
                found.add(sub)
    return found


def test_every_number_in_every_config_has_a_bound():
    checked, unbounded = 0, []
    for cls in all_config_classes():
        for name, field in cls.model_fields.items():
            if not {int, float} & set(typing.get_args(field.annotation) or (field.annotation,)):
                continue
            checked += 1
            if not any(getattr(m, a, None) is not None for m in field.metadata for a in ("ge", "gt", "le", "lt")):
                unbounded.append(f"{cls.__module__}.{cls.__name__}.{name}")
    assert checked > 150, checked  # the walk found the stages' configs
    assert not unbounded, f"give these Field(...) the bound their meaning implies (ge=, gt=, le=, lt=): {unbounded}"


def test_bounds_show_in_help(capsys):
    from hpc_rm import train

    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--epochs VALUE training epochs (> 0; default: 4.0)" in text
    assert "--seed VALUE random seed (init, shuffling, dropout) (>= 0; <= 4294967295; default: 0)" in text


def test_a_number_out_of_range_names_the_file_and_field_or_the_flag(tmp_path):
    from hpc_rm.consistency import ConsistencyConfig
    from hpc_rm.train import TrainConfig

    (tmp_path / "rm.yaml").write_text("batch_size: 8\nepochs: -1\n")
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, tmp_path / "rm.yaml")
    assert str(err.value) == f"{tmp_path / 'rm.yaml'}: invalid config: field epochs: Input should be greater than 0"
    with pytest.raises(ConfigError) as err:
        load_config(ConsistencyConfig, overrides={"seeds": [0, -1]}, flags=frozenset({"seeds"}))
    assert str(err.value) == ("command line: invalid config: flag --seeds (1): Input should be greater than or equal "
                              "to 0 (got -1)")
