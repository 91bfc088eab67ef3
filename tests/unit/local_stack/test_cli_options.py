"""`python -m devstack local|invoke` options that set template parameters."""

from __future__ import annotations

import pytest

from devstack.cli import build_parser, parameter_overrides


@pytest.mark.parametrize("command", [["local"], ["invoke", "BatchScoringFunction", "-e", "e.json"]])
def test_sharding_shortcuts_set_their_parameters_over_parameter_overrides(
    command: list[str],
) -> None:
    args = build_parser().parse_args(
        [
            *command,
            "--parameter-overrides",
            "ShardAboveBytes=5",
            "ServingRuntime=sklearn",
            "--shard-above",
            "1000",
            "--shard-rows",
            "50",
        ]
    )
    assert parameter_overrides(args) == {
        "ShardAboveBytes": "1000",
        "ShardRows": "50",
        "ServingRuntime": "sklearn",
    }


def test_without_shortcuts_the_overrides_are_as_given() -> None:
    args = build_parser().parse_args(["local", "--parameter-overrides", "ShardRows=7"])
    assert parameter_overrides(args) == {"ShardRows": "7"}


@pytest.mark.parametrize(
    "option", [["--shard-above", "0"], ["--shard-rows", "x"], ["--max-environments", "0"]]
)
def test_sizes_must_be_positive_whole_numbers(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["local", *option])
    assert option[0] in capsys.readouterr().err
