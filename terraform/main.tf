locals {
  # Labels on every resource that takes them: the caller's, plus which app and tool own it.
  labels = merge(var.labels, {
    app        = var.name
    managed_by = "terraform"
  })

  # BigQuery location: the function's region unless a (multi-)region is given.
  bigquery_location = coalesce(var.bigquery_location, var.region)
}
