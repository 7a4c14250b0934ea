"""Command-line options generated from dataclasses (rd_vla_ros.options): every supported field type,
required and positional fields, help with defaults, and the three commands built this way."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pytest

from rd_vla_ros.evaluation.options import ReplayOptions, SimEvalOptions
from rd_vla_ros.options import add_options, from_namespace, option
from rd_vla_ros.train.config import TrainConfig


def pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


@dataclass
class Example:
    source: Path = option(help="input", positional=True)
    name: str = option(help="required name")
    count: int = option(3, "how many")
    rate: float | None = option(None, "a rate")
    flag: bool = option(False, "switch on")
    on_by_default: bool = option(True, "switch off")
    answer: bool | None = option(None, "yes or no")
    depths: list[int] = option(help="depths", factory=lambda: [1, 2])
    words: list[str] | None = option(None, "words")
    mode: str = option("a", "mode", choices=("a", "b"))
    tags: dict[str, str] | None = option(None, "KEY=VALUE, repeatable", flag="--tag", collect=pairs)


def parse(argv: list[str]) -> Example:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_options(p, Example)
    return from_namespace(Example, p.parse_args(argv))


def test_each_field_type_becomes_its_option() -> None:
    got = parse(["in.bag", "--name", "n"])
    assert asdict(got) == asdict(Example(source=Path("in.bag"), name="n"))
    got = parse(["x", "--name", "n", "--count", "5", "--rate", "0.5", "--flag", "--on-by-default", "--answer", "no",
                 "--depths", "4,8,16", "--words", "a", "b", "--mode", "b", "--tag", "k=v", "--tag", "x=y"])  # fmt: skip
    assert (got.count, got.rate, got.flag, got.on_by_default, got.answer) == (5, 0.5, True, False, False)
    assert (got.depths, got.words, got.mode, got.tags) == ([4, 8, 16], ["a", "b"], "b", {"k": "v", "x": "y"})
    assert parse(["x", "--name", "n", "--depths", ""]).depths == []  # an empty sweep


@pytest.mark.parametrize(
    "argv", [["x"], ["x", "--name", "n", "--count", "many"], ["x", "--name", "n", "--answer", "maybe"],
             ["x", "--name", "n", "--depths", "1,two"], ["x", "--name", "n", "--mode", "c"]],
)  # fmt: skip
def test_malformed_options_are_refused_by_the_parser(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    p = argparse.ArgumentParser(prog="example")
    add_options(p, Example)
    with pytest.raises(SystemExit) as exit_:
        p.parse_args(argv)
    assert exit_.value.code == 2 and "example: error:" in capsys.readouterr().err


def test_help_shows_each_default_once() -> None:
    p = argparse.ArgumentParser()
    add_options(p, Example)
    text = " ".join(p.format_help().split())
    assert "how many (default: 3)" in text and "depths (default: 1,2)" in text
    assert "switch on (default" not in text


def test_a_field_without_a_command_line_form_is_refused_when_the_parser_is_built() -> None:
    @dataclass
    class Bad:
        table: dict[str, int] | None = option(None, "no form")

    with pytest.raises(TypeError, match="no command-line form"):
        add_options(argparse.ArgumentParser(), Bad)


@pytest.mark.parametrize("cls", [TrainConfig, ReplayOptions, SimEvalOptions])
def test_the_commands_options_each_have_help(cls: type) -> None:
    assert all(f.metadata.get("help") for f in fields(cls)), [f.name for f in fields(cls) if not f.metadata.get("help")]
    add_options(argparse.ArgumentParser(), cls)  # every field has a command-line form


def test_cli_names_a_missing_package_but_shows_its_own_import_bugs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """A dependency absent from the environment is one line and exit 1; a broken import inside rd_vla_ros
    is a bug of the package and keeps its traceback."""
    from rd_vla_ros import cli

    def missing(args: argparse.Namespace, argv: list[str]) -> int:
        raise ModuleNotFoundError("No module named 'mujoco'", name="mujoco")

    monkeypatch.setattr(cli, "export", missing)
    assert cli.main(["export", "embedded", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rd-vla export: mujoco is not installed") and err.count("\n") == 1

    def own_bug(args: argparse.Namespace, argv: list[str]) -> int:
        raise ModuleNotFoundError("No module named 'rd_vla_ros.nowhere'", name="rd_vla_ros.nowhere")

    monkeypatch.setattr(cli, "export", own_bug)
    with pytest.raises(ModuleNotFoundError, match=r"rd_vla_ros\.nowhere"):
        cli.main(["export", "embedded", str(tmp_path)])
