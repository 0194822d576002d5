"""Cloud Function (2nd gen) entrypoint: `run_pipeline`, called by Cloud Scheduler or by hand.

Deploy with `entry_point = "run_pipeline"` (terraform/function.tf). Locally:
`functions-framework --target run_pipeline --source main.py`.
"""

import json
import os
from pathlib import Path

import flask
import functions_framework
from flask.typing import ResponseReturnValue

# dlt reads .dlt/config.toml from the project folder, whatever the working directory.
os.environ.setdefault("DLT_PROJECT_DIR", str(Path(__file__).resolve().parent))

from loader.service import handle, read_body  # after DLT_PROJECT_DIR is set


@functions_framework.http
def run_pipeline(request: flask.Request) -> ResponseReturnValue:
    """Load the analytics API into the warehouse.

    Args:
        request: a Flask request. POST with an empty body, `{}`, or
            `{"resources": ["sessions", ...]}` to load a subset.

    Returns:
        A JSON answer and its HTTP status: 200 ok, 400 bad body, 405 not POST, 409 a run is in
        progress, 413 body too large, 500 configuration/secret/lock/warehouse problem, 502 the API
        failed for a resource.
    """
    # at most the size cap plus one byte is read: a huge body is refused, never held in memory
    status, body = handle(request.method, read_body(request.stream, request.content_length), request.content_length)
    if status == 413:
        # functions-framework reads the whole body after a plain answer, not after a streamed one
        return flask.Response(iter([json.dumps(body)]), status, content_type="application/json")
    return json.dumps(body), status, {"Content-Type": "application/json"}
