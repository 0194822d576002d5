# The cross-instance run lock (RUN_LOCK_BUCKET): one object per pipeline, `run-lock/<pipeline>`,
# created only if absent (if_generation_match=0), read, deleted by generation at the end of a run,
# and overwritten by generation when a run takes over a lock older than RUN_LOCK_TTL_SECONDS.
# Cloud Run may briefly run a second instance and Cloud Scheduler may, rarely, fire twice: the
# local working-folder lock cannot see another instance, this object can.

resource "google_storage_bucket" "run_lock" {
  # checkov:skip=CKV_GCP_62: usage logs would need a second bucket; this one holds only the lock objects of running runs (turn on Cloud Storage Data Access audit logs if lock operations must be recorded).
  name                        = "${var.project_id}-${var.name}-lock"
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds nothing worth keeping once the function is gone.
  force_destroy = true
  labels        = local.labels

  # A released or taken-over lock stays readable as a noncurrent version for a day: which run held it.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.default]
}

# Exactly what the lock does, nothing more: create (and, with delete, overwrite on takeover), read,
# delete. No list, no metadata update, no IAM read; granted on the lock bucket only (iam.tf).
# roles/storage.objectUser would add list, update and restore. Custom roles are soft-deleted:
# recreating one within 7 days of a destroy undeletes it; 7 to 37 days after, its ID is still taken
# (pick another `name`).
resource "google_project_iam_custom_role" "run_lock" {
  project     = var.project_id
  role_id     = "${replace(var.name, "-", "_")}_run_lock"
  title       = "${var.name} run lock"
  description = "Create, read and delete the ${var.name} function's run-lock objects."
  permissions = [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
  ]

  depends_on = [google_project_service.default]
}
