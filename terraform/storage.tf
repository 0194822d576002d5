# The function's source: a private bucket and a zip of exactly the files the function needs.

locals {
  # Repository root (main.py, requirements.txt, the packages), one level above this folder.
  source_root = "${path.module}/.."

  # What goes into the zip: explicit patterns only, so tests, .dlt/secrets.toml, virtualenvs,
  # __pycache__ and *.pyc never do (no pattern can match them).
  source_files = sort(tolist(setunion(
    fileset(local.source_root, "main.py"),
    fileset(local.source_root, "requirements.txt"),
    fileset(local.source_root, ".dlt/config.toml"),
    fileset(local.source_root, "loader/**/*.py"),
    fileset(local.source_root, "source/**/*.py"),
  )))
}

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.module}/.build/function-source.zip"

  dynamic "source" {
    for_each = local.source_files
    content {
      filename = source.value
      content  = file("${local.source_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62: usage logs would need a second bucket; this one holds only the build inputs Terraform uploads and Cloud Functions reads (turn on Cloud Storage Data Access audit logs if reads must be recorded).
  name                        = "${var.project_id}-${var.name}-source"
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds only build inputs that Terraform can re-upload; lets `terraform destroy` remove old versions too.
  force_destroy = true
  labels        = local.labels

  versioning {
    enabled = true
  }

  # Superseded zips become noncurrent versions; keep them a month for rollback, then delete.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "source" {
  # The zip's hash is in the name: a code change is a new object, and a new object redeploys the function.
  name         = "${var.name}/function-source-${data.archive_file.source.output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}
