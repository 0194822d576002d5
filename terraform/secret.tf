# The API key lives in Secret Manager; the function reads it at run time (API_KEY_SECRET).
# By default Terraform creates the secret but never its value: add it with gcloud (README,
# output secret_add_version_command). Opt-in: api_key + api_key_version write it through a
# write-only attribute, which keeps the value out of state and plan.

resource "google_secret_manager_secret" "api_key" {
  secret_id = "${var.name}-api-key"
  project   = var.project_id
  labels    = local.labels
  # Destroying the secret destroys every version of the key: refused until deletion_protection = false.
  deletion_protection = var.deletion_protection

  replication {
    auto {}
  }

  depends_on = [google_project_service.default]
}

resource "google_secret_manager_secret_version" "api_key" {
  count = var.api_key_version == null ? 0 : 1

  secret                 = google_secret_manager_secret.api_key.id
  secret_data_wo         = var.api_key
  secret_data_wo_version = var.api_key_version
  # A new api_key_version replaces this version: the old one is disabled (kept), not destroyed,
  # and only after the new one exists, so "latest" always resolves.
  deletion_policy = "DISABLE"

  lifecycle {
    create_before_destroy = true
  }
}
