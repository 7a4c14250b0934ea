"""Where the package's data files (config/, launch/) are, in a source checkout or a colcon install."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]


@cache
def share_dir() -> Path:
    """The directory holding config/ and launch/.

    A source checkout (editable install) uses the checkout itself; a colcon install uses
    share/rd_vla_ros found through the ament index.
    """
    if (_SOURCE_ROOT / "package.xml").is_file() and (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    from ament_index_python.packages import get_package_share_directory  # only needed when installed

    return Path(get_package_share_directory("rd_vla_ros"))


def config_path(name: str) -> Path:
    """Path of a file shipped in config/ (e.g. "aloha_bimanual.yaml")."""
    return share_dir() / "config" / name


def embedded_checkpoint() -> Path:
    """The default model shipped with the package (rd_vla_ros/weights/embedded)."""
    path = Path(__file__).resolve().parent / "weights" / "embedded"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the embedded checkpoint is not shipped in this version ({path}); set the 'checkpoint' parameter "
            "to a checkpoint directory"
        )
    return path


def resolve_config(value: str) -> Path:
    """A configuration file: `value` itself when it is a file, else the file of that name in config/."""
    path = Path(value)
    return path if path.is_file() else config_path(value)


def resolve_checkpoint(value: str) -> Path:
    """A checkpoint directory: 'embedded' is the shipped model; anything else must be a directory."""
    from rd_vla_ros.model.checkpoint import CheckpointError

    if value == "embedded":
        return embedded_checkpoint()
    path = Path(value)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory '{value}' does not exist")
    return path


def msg_path(name: str) -> Path:
    """Path of a message definition of this package (e.g. "ActionChunk.msg")."""
    return share_dir() / "msg" / name
