# The loader: a 2nd-gen HTTP Cloud Function (a Cloud Run service underneath), built by Cloud
# Build into its own Artifact Registry repository.

resource "google_artifact_registry_repository" "default" {
  # checkov:skip=CKV_GCP_84: Google-managed encryption (the default) is used; a customer-managed key is a cost and operations choice this deployment leaves to the project owner.
  repository_id = var.name
  project       = var.project_id
  location      = var.region
  format        = "DOCKER"
  description   = "Images of the ${var.name} function, built by Cloud Build."
  labels        = local.labels

  # Each deploy pushes an image; keep the recent ones, delete the rest.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.default]
}

resource "google_cloudfunctions2_function" "default" {
  name        = var.name
  project     = var.project_id
  location    = var.region
  description = "Loads the analytics API into BigQuery (dlt); called by Cloud Scheduler."
  labels      = local.labels

  build_config {
    runtime           = "python311"
    entry_point       = "run_pipeline"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.default.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    # One instance handling one request: runs never overlap (a second call waits, then fails).
    min_instance_count               = 0
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    available_memory                 = var.function_memory
    # one whole vCPU: without it the CPU follows the memory (0.583 vCPU at 1Gi), and the volume a
    # run finishes within its deadline was measured on one core (docs/benchmarks.md)
    available_cpu                  = "1"
    timeout_seconds                = var.function_timeout_seconds
    ingress_settings               = var.ingress_settings
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function.email

    # Names from loader/environment.py (SETTINGS); tests/test_terraform.py checks them.
    environment_variables = {
      DESTINATION                                    = "bigquery"
      DATASET_NAME                                   = google_bigquery_dataset.default.dataset_id
      API_KEY_SECRET                                 = "${google_secret_manager_secret.api_key.id}/versions/latest"
      SOURCES__ANALYTICS__BASE_URL                   = var.api_base_url
      SOURCES__ANALYTICS__UID                        = var.api_uid
      SOURCES__ANALYTICS__PROFILE                    = var.api_profile
      SOURCES__ANALYTICS__AUTH_SCHEME                = var.api_auth_scheme
      DESTINATION__BIGQUERY__LOCATION                = google_bigquery_dataset.default.location
      DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID = google_bigquery_dataset.default.project
      DLT_DATA_DIR                                   = "/tmp/analytics-loader"
      RUN_DEADLINE_SECONDS                           = local.run_deadline_seconds
      RUN_LOCK_BUCKET                                = google_storage_bucket.run_lock.name
      RUN_LOCK_TTL_SECONDS                           = local.run_lock_ttl_seconds
    }
  }

  # The build identity needs its rights before the first build, and IAM grants take a while to
  # propagate: wait for them (time_sleep below). Nothing in the references says so.
  depends_on = [
    google_project_service.default,
    time_sleep.build_grants_propagation,
  ]
}

# As the provider's own cloudfunctions2 "basic builder" example: without this pause a first
# `terraform apply` can start the build before the build account's new grants are in effect
# (Google: typically 2 minutes, sometimes 7 or more) and fail. Sleeps on create only; a new build
# account (its unique_id changes) sleeps again.
resource "time_sleep" "build_grants_propagation" {
  create_duration = "120s"

  triggers = {
    build_service_account = google_service_account.build.unique_id
  }

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_gcf_sources_viewer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_viewer,
  ]
}
