output "function_name" {
  description = "Name of the Cloud Function."
  value       = google_cloudfunctions2_function.default.name
}

output "function_uri" {
  description = "HTTPS URI of the function (its Cloud Run service); the scheduler posts here and uses it as the OIDC audience."
  value       = google_cloudfunctions2_function.default.service_config[0].uri
}

output "dataset_id" {
  description = "BigQuery dataset the loader writes into (project:dataset)."
  value       = "${google_bigquery_dataset.default.project}:${google_bigquery_dataset.default.dataset_id}"
}

output "scheduler_job_name" {
  description = "Name of the Cloud Scheduler job."
  value       = google_cloud_scheduler_job.default.name
}

output "secret_id" {
  description = "Secret Manager secret holding the API key (projects/<project>/secrets/<name>)."
  value       = google_secret_manager_secret.api_key.id
}

output "function_service_account" {
  description = "Email of the service account the function runs as."
  value       = google_service_account.function.email
}

output "scheduler_service_account" {
  description = "Email of the service account Cloud Scheduler calls the function with."
  value       = google_service_account.scheduler.email
}

output "build_service_account" {
  description = "Email of the service account Cloud Build builds the function with."
  value       = google_service_account.build.email
}

output "source_object" {
  description = "The uploaded source zip (gs://bucket/object); its name carries the zip's MD5."
  value       = "gs://${google_storage_bucket_object.source.bucket}/${google_storage_bucket_object.source.name}"
}

output "secret_add_version_command" {
  description = "Adds the API key as the secret's latest version, with the key in $KEY (no trailing newline is added)."
  value       = "printf %s \"$KEY\" | gcloud secrets versions add ${google_secret_manager_secret.api_key.secret_id} --project ${google_secret_manager_secret.api_key.project} --data-file=-"
}

output "scheduler_run_command" {
  description = "Triggers one run now through Cloud Scheduler (same identity and path as the schedule)."
  value       = "gcloud scheduler jobs run ${google_cloud_scheduler_job.default.name} --location ${google_cloud_scheduler_job.default.region} --project ${google_cloud_scheduler_job.default.project}"
}

output "curl_command" {
  description = "Calls the function directly with your identity token (needs run.invoker for you, and ingress_settings = ALLOW_ALL when called from outside Google Cloud)."
  value       = "curl -X POST -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" -H 'Content-Type: application/json' -d '{}' ${google_cloudfunctions2_function.default.service_config[0].uri}"
}

output "logs_command" {
  description = "Shows the function's recent logs."
  value       = "gcloud functions logs read ${google_cloudfunctions2_function.default.name} --region ${google_cloudfunctions2_function.default.location} --project ${google_cloudfunctions2_function.default.project} --limit 100"
}

output "run_lock_bucket" {
  description = "Bucket of the cross-instance run lock (RUN_LOCK_BUCKET); a run holds run-lock/<pipeline> while it runs."
  value       = google_storage_bucket.run_lock.name
}

output "alert_policies" {
  description = "The alert policies (projects/<project>/alertPolicies/<id>), by what they watch: failed runs, no successful run, scheduler failures."
  value = {
    failed_runs        = google_monitoring_alert_policy.failed_runs.name
    no_successful_run  = google_monitoring_alert_policy.no_successful_run.name
    scheduler_failures = google_monitoring_alert_policy.scheduler_failures.name
  }
}

output "notification_channels" {
  description = "The email notification channels the alert policies notify (one per alert_emails address; empty: none)."
  value       = { for email, channel in google_monitoring_notification_channel.email : email => channel.name }
}
