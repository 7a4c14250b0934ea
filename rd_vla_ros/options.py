"""Command-line options generated from a dataclass: each field is declared once, with its type,
default and help, and becomes the option of the same name (`--batch-size` for `batch_size`).

    @dataclass
    class TrainConfig:
        steps: int = option(20_000, "optimizer steps")

    add_options(parser, TrainConfig)            # --steps N (default 20000)
    config = from_namespace(TrainConfig, args)  # TrainConfig(steps=args.steps, ...)

Types: int, float, str, Path, bool (a flag; `bool | None` takes yes|no), `X | None` (default None),
list[int] / list[float] (comma-separated), list[str] (one or more words). Anything else names its
`parse` (applied to each word, or with `collect` to the list of every repeat of the option).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MISSING: Any = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | list[str] | None = None,
    parse: Callable[[str], Any] | None = None,
    collect: Callable[[list[str]], Any] | None = None,
    positional: bool = False,
) -> Any:
    """A dataclass field with what its command-line option needs. `parse` converts one word; `collect`
    makes the option repeatable and converts the list of its words (e.g. --crop A --crop B)."""
    metadata = {"help": help, "flag": flag, "metavar": metavar, "choices": choices, "parse": parse,
                "collect": collect, "positional": positional}  # fmt: skip
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def yes_no(text: str) -> bool:
    if text.lower() not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"expected yes or no, got '{text}'")
    return text.lower() == "yes"


def comma_list(kind: type) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got '{text}'") from None

    parse.__name__ = f"{kind.__name__} list"  # argparse names the type in its error message
    return parse


def add_options(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One option per field of dataclass `cls` (except `skip`)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = f.metadata
        kwargs: dict[str, Any] = {"help": _help(f)}
        kind, optional = _unwrap(hints[f.name])
        default = _default(f)
        if meta.get("collect"):
            kwargs.update(action="append", default=[], metavar=meta.get("metavar"))
        elif kind is bool and not optional:
            kwargs.update(action="store_false" if default else "store_true", default=default)
        else:
            kwargs.update(_typed(kind, optional, meta), default=default)
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
            if meta.get("choices"):
                kwargs["choices"] = list(meta["choices"])
        if meta.get("positional"):
            kwargs.pop("default")
            parser.add_argument(f.name, **kwargs)
            continue
        required = default is _MISSING
        if required:
            kwargs.pop("default")
        parser.add_argument(meta.get("flag") or "--" + f.name.replace("_", "-"), dest=f.name, required=required,
                            **kwargs)  # fmt: skip


def from_namespace(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """An instance of `cls` from the parsed options (its own fields; `given` overrides)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        collect = f.metadata.get("collect")
        if collect:  # a repeatable option never given keeps the field's default
            value = collect(value) if value else _default(f)
        values[f.name] = value
    return cls(**values, **given)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(type, whether None is allowed) of `X | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), len(args) < len(typing.get_args(hint))
    return hint, False


def _typed(kind: Any, optional: bool, meta: Any) -> dict[str, Any]:
    if meta.get("parse"):
        return {"type": meta["parse"]}
    if kind is bool:  # bool | None: yes | no, None = decided elsewhere
        return {"type": yes_no, "metavar": "yes|no"}
    if kind in (int, float, str, Path):
        return {"type": kind}
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if item in (int, float):
            return {"type": comma_list(item), "metavar": f"{item.__name__.upper()}[,...]"}
        if item is str:
            return {"nargs": "+"}
    raise TypeError(f"no command-line form for {kind}; give the field a parse=")


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return f.default


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    default = _default(f)
    if "default" in text or default is _MISSING or default is None or isinstance(default, bool) or default == []:
        return text
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text} (default: {shown})" if text else f"default: {shown}"
