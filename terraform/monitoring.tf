# Alerts: a run failed (the function answered 5xx), no run succeeded for a while (silence), and
# Cloud Scheduler could not get a 2xx from the function. Each is a log-based metric plus an alert
# policy; the policies exist even without notification channels, so incidents show in the console.
#
# The function logs one JSON line per answered request on stdout (Cloud Logging's jsonPayload):
#   {"severity": "ERROR", "message": "run answered 502", "http_status": 502, "run_id": ..., "logger": "analytics_loader"}
# with severity INFO and http_status 200 on success.

locals {
  alert_channels = [for channel in google_monitoring_notification_channel.email : channel.name]

  # Every "run answered <status>" line of the function's Cloud Run service.
  run_answered_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${google_cloudfunctions2_function.default.name}\"",
    "jsonPayload.message=~\"^run answered \"",
  ])
  logs_command_prefix = "gcloud logging read --project ${var.project_id} --freshness 2d --limit 20"
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  project      = var.project_id
  display_name = "${var.name} alerts: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
  user_labels = local.labels

  depends_on = [google_project_service.default]
}

# --- a run failed -------------------------------------------------------------------------------

resource "google_logging_metric" "failed_runs" {
  project     = var.project_id
  name        = "${var.name}-failed-runs"
  description = "Runs of the ${var.name} function that answered 5xx, by HTTP status."
  filter      = "${local.run_answered_filter} AND jsonPayload.http_status>=500"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} failed runs"

    labels {
      key         = "http_status"
      value_type  = "STRING"
      description = "HTTP status the function answered: 500 configuration, secret or warehouse; 502 the API failed for a resource."
    }
  }

  label_extractors = {
    http_status = "EXTRACT(jsonPayload.http_status)"
  }

  depends_on = [google_project_service.default]
}

resource "google_monitoring_alert_policy" "failed_runs" {
  project               = var.project_id
  display_name          = "${var.name}: a run failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "The function answered 5xx"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.failed_runs.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.http_status"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: a run failed"
    content   = <<-EOT
      A run of the `${var.name}` loader answered HTTP 5xx (label `http_status`). Tables of the
      resources that loaded were updated; the failed ones keep their last data and the next run
      retries them.

      - **500**: configuration, the API key secret (no version yet, no access) or the warehouse.
      - **502**: the analytics API failed for at least one resource (the answer names each).

      First check the run's error lines (each carries its `run_id`):
      `${local.logs_command_prefix} 'resource.type="cloud_run_revision" AND resource.labels.service_name="${google_cloudfunctions2_function.default.name}" AND severity>=ERROR'`
    EOT
  }

  depends_on = [google_project_service.default]
}

# --- no run succeeded ---------------------------------------------------------------------------

resource "google_logging_metric" "successful_runs" {
  project     = var.project_id
  name        = "${var.name}-successful-runs"
  description = "Runs of the ${var.name} function that answered 200."
  filter      = "${local.run_answered_filter} AND jsonPayload.http_status=200"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} successful runs"
  }

  depends_on = [google_project_service.default]
}

resource "google_monitoring_alert_policy" "no_successful_run" {
  project               = var.project_id
  display_name          = "${var.name}: no successful run"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "No run answered 200 for ${local.success_alert_window_seconds / 60} minutes"

    # Summed across revisions: a redeploy starts a new series, which must not look like silence.
    condition_absent {
      filter   = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.successful_runs.name}\""
      duration = "${local.success_alert_window_seconds}s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: no successful run"
    content   = <<-EOT
      No run of the `${var.name}` loader answered 200 for ${local.success_alert_window_seconds / 60} minutes
      (schedule `${var.schedule}`, ${var.time_zone}): the warehouse is getting stale. Either runs
      fail (see the "a run failed" alert), or they do not happen at all.

      First check that the job runs and what it got back:
      `gcloud scheduler jobs describe ${google_cloud_scheduler_job.default.name} --location ${google_cloud_scheduler_job.default.region} --project ${var.project_id}`
      (state ENABLED, `lastAttemptTime`, `status`), then the function's answers:
      `${local.logs_command_prefix} '${local.run_answered_filter}'`
    EOT
  }

  depends_on = [google_project_service.default]
}

# --- Cloud Scheduler could not run the job ------------------------------------------------------

# Cloud Scheduler logs each attempt; a failed one (no answer, refused, non-2xx, deadline exceeded)
# is an AttemptFinished entry with severity ERROR.
resource "google_logging_metric" "scheduler_failures" {
  project     = var.project_id
  name        = "${var.name}-scheduler-failures"
  description = "Failed attempts of the ${var.name} Cloud Scheduler job (function unreachable, refused or non-2xx)."
  filter = join(" AND ", [
    "resource.type=\"cloud_scheduler_job\"",
    "resource.labels.job_id=\"${google_cloud_scheduler_job.default.name}\"",
    "resource.labels.location=\"${google_cloud_scheduler_job.default.region}\"",
    "severity>=ERROR",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} scheduler failures"
  }

  depends_on = [google_project_service.default]
}

resource "google_monitoring_alert_policy" "scheduler_failures" {
  project               = var.project_id
  display_name          = "${var.name}: scheduler attempt failed"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "A Cloud Scheduler attempt failed"

    condition_threshold {
      filter          = "resource.type=\"cloud_scheduler_job\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_failures.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: scheduler attempt failed"
    content   = <<-EOT
      Cloud Scheduler's job `${google_cloud_scheduler_job.default.name}` did not get a 2xx from the
      `${var.name}` function: the function answered an error (then "a run failed" fires too, start
      there; 409 means a run was still in progress), or the call never reached it (permission denied,
      ingress, deadline exceeded after ${var.function_timeout_seconds} s).

      First check the attempt's status in the job's log:
      `${local.logs_command_prefix} 'resource.type="cloud_scheduler_job" AND resource.labels.job_id="${google_cloud_scheduler_job.default.name}" AND severity>=ERROR'`
    EOT
  }

  depends_on = [google_project_service.default]
}
