# Values derived from the inputs only (no resource): tests/test_terraform.py plans this file with
# variables.tf alone, provider-free, to check the derivations and the validations that use them.
locals {
  # Labels on every resource that takes them: the caller's, plus which app and tool own it.
  labels = merge(var.labels, {
    app        = var.name
    managed_by = "terraform"
  })

  # BigQuery location: the function's region unless a (multi-)region is given.
  bigquery_location = coalesce(var.bigquery_location, var.region)

  # A run stops reading at its deadline and still has to load what it read before the function's
  # timeout cuts it off: keep a sixth of the timeout for that, between 60 and 300 s.
  run_deadline_seconds = var.function_timeout_seconds - min(300, max(60, floor(var.function_timeout_seconds / 6)))
  # A run lock older than any run can be is left over from a crashed run: the next run takes it over.
  run_lock_ttl_seconds = var.function_timeout_seconds + 60

  # The schedule's five fields: minute hour day-of-month month day-of-week.
  cron = regexall("\\S+", var.schedule)
  # The longest gap between two scheduled runs, in seconds, for the schedules it can be read off
  # (every N minutes, hourly, every N hours, daily, on every day of every month); null otherwise.
  schedule_period_seconds = (
    join(" ", slice(local.cron, 2, 5)) != "* * *" ? null :
    can(regex("^\\*(/[0-9]+)?$", local.cron[0])) && local.cron[1] == "*" ? 60 * tonumber(try(split("/", local.cron[0])[1], "1")) :
    can(regex("^[0-9]+$", local.cron[0])) && local.cron[1] == "*" ? 3600 :
    can(regex("^[0-9]+$", local.cron[0])) && can(regex("^\\*/[0-9]+$", local.cron[1])) ? 3600 * tonumber(split("/", local.cron[1])[1]) :
    can(regex("^[0-9]+$", local.cron[0])) && can(regex("^[0-9]+$", local.cron[1])) ? 86400 :
    null
  )
  # How long without a successful run before the "no successful run" alert: twice the period by
  # default, within Cloud Monitoring's longest absence window (24.5 h).
  success_alert_window_seconds = (
    var.success_alert_window_seconds != null ? var.success_alert_window_seconds : min(2 * local.schedule_period_seconds, 88200)
  )
}
