#!/usr/bin/env python3
"""Why collect gets slower per shard on moto as a run grows
(docs/benchmarks.md, section (e), "On moto").

Times, in moto in-process (boto3 + moto's models, CPU per call), the two
collect calls whose work could grow with the run: S3 ListObjectsV2 under one
shard's prefix in a bucket of n keys, and DynamoDB's conditional UpdateItem
(ALL_NEW) that counts a shard on a run item whose `won` map already holds n
entries, as `DynamoRunStore::complete_shard` does.

Usage: target/test-deps/venv-aws/bin/python scripts/bench/moto_run_item.py
(scripts/emulators.sh installs that venv).
"""
import time, boto3
from moto import mock_aws

def per_call(f, calls=20):
    t = time.process_time()
    for i in range(calls):
        f(i)
    return (time.process_time() - t) * 1000 / calls

@mock_aws
def main():
    s3 = boto3.client("s3", region_name="us-east-1")
    db = boto3.client("dynamodb", region_name="us-east-1")
    db.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST")
    for n in (0, 2000, 4000):
        b = f"bucket-{n}"
        s3.create_bucket(Bucket=b)
        for k in range(n):
            s3.put_object(Bucket=b, Key=f"runs/r/shards/{k}/attempt-1/junit/x.xml", Body=b"x")
        ls = per_call(lambda i: s3.list_objects_v2(Bucket=b, Prefix=f"runs/r/shards/{i}/attempt-1/junit/"))
        db.put_item(TableName="t", Item={"pk": {"S": f"run{n}"}, "sc": {"N": "100000"}, "done": {"N": "0"},
                    "won": {"M": {str(k): {"N": "1"} for k in range(n)}}})
        up = per_call(lambda i: db.update_item(TableName="t", Key={"pk": {"S": f"run{n}"}},
            UpdateExpression="SET #won.#k = :att ADD #done :one",
            ConditionExpression="attribute_exists(#pk) AND #sc > :idx AND attribute_not_exists(#won.#k)",
            ExpressionAttributeNames={"#pk": "pk", "#sc": "sc", "#won": "won", "#done": "done", "#k": str(n + i)},
            ExpressionAttributeValues={":idx": {"N": str(n + i)}, ":one": {"N": "1"}, ":att": {"N": "1"}},
            ReturnValues="ALL_NEW"))
        print(f"n={n}: ListObjectsV2 {ls:.1f} ms, UpdateItem {up:.1f} ms (CPU per call, boto3 + moto in-process)", flush=True)
main()
