"""Readers of ONNX protos shared by the graph passes: a node's attribute, a value's static dims (onnx only)."""

from __future__ import annotations

import onnx
from onnx import helper


def node_attribute(node: onnx.NodeProto, name: str, default=None):
    """The value of attribute `name` of `node`, or `default` when the node does not set it."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def static_dims(info: onnx.ValueInfoProto) -> list[int | None]:
    """The dims of a tensor value: the fixed size of each, None where it is symbolic or unknown."""
    return [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
