"""Cloud Function (2nd gen) entrypoint: `run_pipeline`, called by Cloud Scheduler or by hand.

Deploy with `entry_point = "run_pipeline"` (terraform/function.tf). Locally:
`functions-framework --target run_pipeline --source main.py`.
"""

import json
import os
from pathlib import Path

import functions_framework

# dlt reads .dlt/config.toml from the project folder, whatever the working directory.
os.environ.setdefault("DLT_PROJECT_DIR", str(Path(__file__).resolve().parent))

from loader.service import handle  # noqa: E402  (after DLT_PROJECT_DIR is set)


@functions_framework.http
def run_pipeline(request):
    """Load the analytics API into the warehouse.

    Args:
        request: a Flask request. POST with an empty body, `{}`, or
            `{"resources": ["sessions", ...]}` to load a subset.

    Returns:
        A JSON answer and its HTTP status: 200 ok, 400 bad body, 405 not POST, 409 a run is in
        progress, 500 configuration/secret/warehouse problem, 502 the API failed for a resource.
    """
    status, body = handle(request.method, request.get_data(cache=False))
    return json.dumps(body), status, {"Content-Type": "application/json"}
