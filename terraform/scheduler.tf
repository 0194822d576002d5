# Calls the function on a schedule, authenticated with the scheduler account's OIDC token.

resource "google_cloud_scheduler_job" "default" {
  name        = var.name
  project     = var.project_id
  region      = var.region
  description = "Runs the ${var.name} loader."
  schedule    = var.schedule
  time_zone   = var.time_zone
  # As long as a run may take: the function's timeout (at most 30 minutes, Cloud Scheduler's limit).
  attempt_deadline = "${var.function_timeout_seconds}s"

  retry_config {
    retry_count          = var.scheduler_retry_count
    min_backoff_duration = "60s"
    max_backoff_duration = "300s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.default.service_config[0].uri
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.default.service_config[0].uri
    }
  }

  # A call made before the invoker grant exists would be refused.
  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invoker]
}
