# Three identities, each with only what its job needs (grants in iam.tf).

resource "google_service_account" "function" {
  account_id   = "${var.name}-fn"
  project      = var.project_id
  display_name = "${var.name} function"
  description  = "Runs the loader: reads the API key secret, writes the BigQuery datasets."

  depends_on = [google_project_service.default]
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name}-scheduler"
  project      = var.project_id
  display_name = "${var.name} scheduler"
  description  = "Cloud Scheduler calls the function with this identity's OIDC token (run.invoker on the function only)."

  depends_on = [google_project_service.default]
}

resource "google_service_account" "build" {
  account_id   = "${var.name}-build"
  project      = var.project_id
  display_name = "${var.name} build"
  description  = "Cloud Build builds the function's image with this identity (source read, image push, build logs)."

  depends_on = [google_project_service.default]
}
