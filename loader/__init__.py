"""The Cloud Function around the analytics source: HTTP service, one run, settings, secrets, logs."""
