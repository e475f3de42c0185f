"""Plain Python values to and from DynamoDB's typed attribute values (numbers as ``int``
where they are whole, so job counters read as counts)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

# DynamoDB's limits on one request.
BATCH_GET_KEYS = 100
BATCH_WRITE_ITEMS = 25
TRANSACT_ITEMS = 100


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """``{"name": value}`` as DynamoDB attributes; None values are left out."""
    return {k: _SERIALIZER.serialize(v) for k, v in values.items() if v is not None}


def to_values(names_to_values: dict[str, Any]) -> dict[str, Any]:
    """Expression attribute values (``{":x": value}``) as DynamoDB attributes."""
    return {k: _SERIALIZER.serialize(v) for k, v in names_to_values.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
