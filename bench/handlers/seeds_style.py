"""The baseline: the simplest serverless scikit-learn handler a user could write.

What the common "model in S3, Lambda behind API Gateway" samples do: a boto3 client at
import, the joblib model downloaded and unpickled on the first call, then predict and
predict_proba, one JSON body. No validation, no framework, no registry, no checks.
bench/cold_start.py runs it under the Lambda RIE beside the project's functions.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import boto3
import joblib

s3 = boto3.client("s3")
FEATURES = os.environ["FEATURES"].split(",")
model: Any = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global model
    if model is None:
        body = s3.get_object(Bucket=os.environ["MODEL_BUCKET"], Key=os.environ["MODEL_KEY"])
        model = joblib.load(io.BytesIO(body["Body"].read()))
    record = json.loads(event["body"])
    row = [[record[name] for name in FEATURES]]
    label = model.predict(row)[0]
    probabilities = model.predict_proba(row)[0]
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(
            {
                "prediction": str(label),
                "probabilities": dict(
                    zip(map(str, model.classes_), probabilities.tolist(), strict=True)
                ),
            }
        ),
    }
