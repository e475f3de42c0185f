"""The emulator's DynamoDB transactions copy only the items they write (a bulk job's
ledger grows by an item per image) and stay all or nothing."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from skyclass.operations.local.emulator import snapshot_transaction_items


@pytest.fixture
def table(aws, monkeypatch):
    snapshot_transaction_items(monkeypatch.setattr)
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}])
    return dynamodb


def _put(key: str, condition: str | None = None) -> dict:
    put = {"TableName": "t", "Item": {"pk": {"S": "job"}, "sk": {"S": key}}}
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


def _count(dynamodb) -> dict:
    return {"TableName": "t", "Key": {"pk": {"S": "job"}, "sk": {"S": "counts"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}}}


def test_a_failed_transaction_leaves_nothing_it_wrote(table):
    # GIVEN an item the transaction's condition will find
    table.put_item(TableName="t", Item={"pk": {"S": "job"}, "sk": {"S": "i#1"}})
    # WHEN a transaction writes a new item and a counter, then fails on that condition
    with pytest.raises(ClientError) as failed:
        table.transact_write_items(TransactItems=[
            _put("i#0"), {"Update": _count(table)},
            _put("i#1", "attribute_not_exists(pk)")])
    # THEN DynamoDB's answer names the failure, and neither write happened
    assert [r["Code"] for r in failed.value.response["CancellationReasons"]] == [
        "None", "None", "ConditionalCheckFailed"]
    keys = {i["sk"]["S"] for i in table.scan(TableName="t")["Items"]}
    assert keys == {"i#1"}


def test_a_transaction_never_copies_the_table(table, monkeypatch):
    from moto.dynamodb.models.table import Table

    def refuse(self, memo):
        raise AssertionError("a transaction copied the whole table")

    # GIVEN tables that may not be copied (a copy is O(the table): a ledger's size)
    monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)
    # WHEN transactions succeed and fail
    table.transact_write_items(TransactItems=[_put("i#0"), {"Update": _count(table)}])
    with pytest.raises(ClientError):
        table.transact_write_items(TransactItems=[_put("i#1"),
                                                  _put("i#0", "attribute_not_exists(pk)")])
    # THEN they did so without a copy, and the failed one left nothing
    keys = {i["sk"]["S"] for i in table.scan(TableName="t")["Items"]}
    assert keys == {"i#0", "counts"}


def test_concurrent_writes_to_one_item_all_count(table, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from skyclass.operations.local.emulator import serialize_item_writes

    # GIVEN the emulator's item writes made atomic, as DynamoDB's are
    serialize_item_writes(monkeypatch.setattr)

    def add(n: int) -> None:
        for i in range(25):
            if i % 2:
                table.update_item(**_count(table))
            else:
                table.transact_write_items(TransactItems=[
                    _put(f"w#{n}-{i}"), {"Update": _count(table)}])

    # WHEN eight writers add to one counter at once, alone and in transactions
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(8)))
    # THEN no addition was lost
    item = table.get_item(TableName="t", Key={"pk": {"S": "job"}, "sk": {"S": "counts"}})
    assert item["Item"]["n"]["N"] == str(8 * 25)
