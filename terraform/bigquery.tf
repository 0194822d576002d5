# The loader's dataset, and the staging dataset dlt merges through (<dataset>_staging).
# Created here so the function needs no project-wide right to create datasets.

resource "google_bigquery_dataset" "default" {
  # checkov:skip=CKV_GCP_81: Google-managed encryption (the default) is used; a customer-managed key is a cost and operations choice this deployment leaves to the project owner.
  dataset_id  = var.dataset_name
  project     = var.project_id
  location    = local.bigquery_location
  description = "Tables loaded from the analytics API by ${var.name} (dlt)."
  labels      = local.labels
  # A destroy must not take the loaded data with it: Terraform refuses while deletion_protection
  # is on, and BigQuery refuses to delete a dataset that still has tables.
  deletion_policy            = var.deletion_protection ? "PREVENT" : "DELETE"
  delete_contents_on_destroy = false

  depends_on = [google_project_service.default]
}

resource "google_bigquery_dataset" "staging" {
  # checkov:skip=CKV_GCP_81: Google-managed encryption (the default) is used; a customer-managed key is a cost and operations choice this deployment leaves to the project owner.
  dataset_id  = "${var.dataset_name}_staging"
  project     = var.project_id
  location    = local.bigquery_location
  description = "dlt staging tables for merges into ${var.dataset_name}; dlt empties them on each load."
  labels      = local.labels
  # Only transient copies: nothing to keep on destroy.
  delete_contents_on_destroy = true

  depends_on = [google_project_service.default]
}
