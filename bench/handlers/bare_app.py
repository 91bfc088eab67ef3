"""The bare app of the warm-path benchmark: FastAPI + Mangum and nothing of ours.

One async POST route that reads the body, ``json.loads`` it and returns a constant JSON
response, wrapped by Mangum with lifespan off: what any FastAPI-on-Lambda app pays.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, Response
from mangum import Mangum

app = FastAPI()
CONSTANT = b'{"prediction":"setosa"}'


@app.post("/predict")
async def predict(request: Request) -> Response:
    json.loads(await request.body())
    return Response(CONSTANT, media_type="application/json")


handler: Any = Mangum(app, lifespan="off")
