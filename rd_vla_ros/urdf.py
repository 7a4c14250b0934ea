"""Joints and their limits read from a URDF (a file or the XML text of a `robot_description`).

Parsed with `urdf_parser_py` (PyPI: urdfdom-py), the URDF parser of the ROS 2 distributions
themselves (ros/urdf_parser_py, BSD). Chosen over yourdfpy because it needs only lxml and PyYAML,
which this package already installs (yourdfpy pulls trimesh and its mesh stack to load meshes this
package never looks at), and because it reads URDFs exactly as ROS tools read them (joint types,
`<limit>`, `<mimic>`). No ROS types, no rclpy.

Real URDFs carry things a strict XML parser refuses although every ROS tool reads them, e.g. an
attribute with an undeclared namespace prefix (`drake:acceleration` in the UR URDFs): those are read
in lxml's recovering mode. Unknown tags and attributes are ignored (a URDF may hold anything for
other tools), not printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from urdf_parser_py import urdf as urdf_model
from urdf_parser_py.xml_reflection import core as xml_core

MOVING_TYPES = ("revolute", "prismatic", "continuous")


class URDFError(ValueError):
    """A URDF that cannot be read or does not say what is needed; the message says which and why."""


@dataclass(frozen=True)
class URDFJoint:
    """One moving joint of a URDF.

    lower / upper: position limits (None for a continuous joint, which has none); velocity: the
    URDF's velocity limit (None when absent or 0); mimic: the joint it follows, when it is a mimic
    joint (not independently commandable).
    """

    name: str
    type: str
    lower: float | None
    upper: float | None
    velocity: float | None
    mimic: str | None = None


@dataclass(frozen=True)
class URDFRobot:
    name: str
    joints: tuple[URDFJoint, ...]  # moving joints, in document order
    source: str

    @property
    def actuated(self) -> list[str]:
        """Moving joints that are not mimic joints: those a controller commands, in URDF order."""
        return [j.name for j in self.joints if j.mimic is None]

    def joint(self, name: str) -> URDFJoint | None:
        return next((j for j in self.joints if j.name == name), None)


def looks_like_urdf_xml(text: str) -> bool:
    """True for the XML text of a URDF (a robot_description parameter), not a file name."""
    return text.lstrip().startswith("<")


def read_urdf(path: str | Path) -> URDFRobot:
    """The moving joints of the URDF file at `path`."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise URDFError(f"cannot read the URDF '{path}': {err.strerror or err}") from err
    return parse_urdf(data, str(path))


def parse_urdf(xml: str | bytes, source: str = "robot_description") -> URDFRobot:
    """The moving joints of a URDF given as XML text; URDFError names `source` and the problem."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        node = etree.fromstring(data, etree.XMLParser(remove_comments=True))
    except etree.XMLSyntaxError as err:
        if "Namespace prefix" not in str(err):
            raise URDFError(f"{source} is not valid XML: {err}") from err
        node = etree.fromstring(data, etree.XMLParser(remove_comments=True, recover=True))
    if node is None or node.tag != "robot":
        raise URDFError(f"{source} is not a URDF: its root element is not <robot>")
    previous = xml_core.on_error
    xml_core.on_error = _ignore  # unknown tags / attributes: other tools' extensions
    try:
        model = urdf_model.URDF.from_xml(node, xml_core.Path("robot", tree=etree.ElementTree(node)))
    except (xml_core.ParseError, ValueError, TypeError, AttributeError) as err:
        raise URDFError(f"{source}: {' '.join(str(err).split())}") from err
    finally:
        xml_core.on_error = previous
    joints = []
    for joint in model.joints:
        if joint.type not in MOVING_TYPES:
            continue
        limit = joint.limit
        bounded = joint.type != "continuous" and limit is not None
        velocity = float(limit.velocity) if limit is not None and limit.velocity else None
        joints.append(
            URDFJoint(
                name=joint.name,
                type=joint.type,
                lower=float(limit.lower) if bounded and limit.lower is not None else None,
                upper=float(limit.upper) if bounded and limit.upper is not None else None,
                velocity=velocity if velocity is None or math.isfinite(velocity) else None,
                mimic=joint.mimic.joint if joint.mimic is not None else None,
            )
        )
    return URDFRobot(name=str(model.name or "robot"), joints=tuple(joints), source=source)


def _ignore(message: str) -> None:
    del message
