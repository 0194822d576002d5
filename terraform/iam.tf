# Every grant on the narrowest resource that works. No basic roles, no public members.

# --- function: the runtime identity ---------------------------------------------------------

# Read the API key, this secret only.
resource "google_secret_manager_secret_iam_member" "function_secret_accessor" {
  project   = google_secret_manager_secret.api_key.project
  secret_id = google_secret_manager_secret.api_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function.email}"
}

# Create and write tables in the loader's dataset and in dlt's staging dataset, nothing else.
resource "google_bigquery_dataset_iam_member" "function_data_editor" {
  for_each = {
    default = google_bigquery_dataset.default.dataset_id
    staging = google_bigquery_dataset.staging.dataset_id
  }

  project    = var.project_id
  dataset_id = each.value
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.function.email}"
}

# Take, read and release the cross-instance run lock: the lock's own role (lock.tf), on the lock
# bucket only.
resource "google_storage_bucket_iam_member" "function_run_lock" {
  bucket = google_storage_bucket.run_lock.name
  role   = google_project_iam_custom_role.run_lock.id
  member = "serviceAccount:${google_service_account.function.email}"
}

# Run load and query jobs: jobs are project resources, so this one is granted on the project.
resource "google_project_iam_member" "function_job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.function.email}"
}

# --- scheduler: the caller ------------------------------------------------------------------

# Invoke the function's Cloud Run service, this service only (gen2 functions are Cloud Run services).
resource "google_cloud_run_v2_service_iam_member" "scheduler_invoker" {
  project  = google_cloudfunctions2_function.default.project
  location = google_cloudfunctions2_function.default.location
  name     = google_cloudfunctions2_function.default.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# --- build: the Cloud Build identity --------------------------------------------------------

# Write build logs. Logs are written to the project; there is no narrower resource.
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Push the built image (and the buildpack cache) to the function's repository only.
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = google_artifact_registry_repository.default.project
  location   = google_artifact_registry_repository.default.location
  repository = google_artifact_registry_repository.default.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Read the uploaded source zip in our bucket.
resource "google_storage_bucket_iam_member" "build_source_viewer" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# Cloud Functions copies the zip into its own bucket (gcf-v2-sources-<project number>-<region>),
# created on the first deploy, and the build fetches it from there. Granted on the project (the
# bucket is not ours to grant on), restricted by condition to that one bucket and its objects:
# a prefix alone would also match other regions' buckets (europe-west1 is a prefix of europe-west10).
data "google_project" "current" {
  project_id = var.project_id
}

locals {
  gcf_sources_bucket = "projects/_/buckets/gcf-v2-sources-${data.google_project.current.number}-${var.region}"
}

resource "google_project_iam_member" "build_gcf_sources_viewer" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf_v2_sources_bucket_only"
    description = "Only the bucket Cloud Functions copies this project's ${var.region} function sources into."
    expression  = "resource.name == \"${local.gcf_sources_bucket}\" || resource.name.startsWith(\"${local.gcf_sources_bucket}/objects/\")"
  }
}
