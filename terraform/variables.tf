variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project to deploy into (billing enabled)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lower-case letters, digits and hyphens), not a project name or number."
  }
}

variable "region" {
  type        = string
  description = "Region of the function, the scheduler job, the Artifact Registry repository and the source bucket, e.g. europe-west1."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1 (not a zone such as europe-west1-b)."
  }
}

variable "name" {
  type        = string
  description = "Base name of the function, the scheduler job, the secret, the repository and the service accounts."
  default     = "analytics-loader"

  validation {
    # Service account IDs are at most 30 characters and get a suffix of up to 10 ("-scheduler").
    condition     = can(regex("^[a-z][a-z0-9-]{2,18}[a-z0-9]$", var.name))
    error_message = "name must be 4-20 lower-case letters, digits or hyphens, start with a letter and not end with a hyphen."
  }
}

variable "dataset_name" {
  type        = string
  description = "BigQuery dataset the loader writes into (the function's DATASET_NAME). dlt also uses <dataset_name>_staging for merges."
  default     = "analytics"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.dataset_name)) && length(var.dataset_name) <= 1016
    error_message = "dataset_name must be letters, digits and underscores, not start with a digit, and leave room for the _staging suffix."
  }
}

variable "bigquery_location" {
  type        = string
  description = "BigQuery location of the datasets: a multi-region (US, EU) or a region. Null: the function's region."
  default     = null

  validation {
    condition     = var.bigquery_location == null || can(regex("^(US|EU|[a-z]+-[a-z]+[0-9]+)$", var.bigquery_location))
    error_message = "bigquery_location must be US, EU or a region such as europe-west1."
  }
}

variable "api_base_url" {
  type        = string
  description = "Base URL of the analytics API (SOURCES__ANALYTICS__BASE_URL)."

  validation {
    condition     = can(regex("^https://[^/\\s]+", var.api_base_url))
    error_message = "api_base_url must be an https:// URL."
  }
}

variable "api_uid" {
  type        = string
  description = "`uid` query parameter of the sessions endpoint (SOURCES__ANALYTICS__UID)."

  validation {
    condition     = length(trimspace(var.api_uid)) > 0
    error_message = "api_uid must not be empty."
  }
}

variable "api_profile" {
  type        = string
  description = "Response shapes the loader expects (SOURCES__ANALYTICS__PROFILE): seed (the specification) or documented (the real API's documented shapes)."
  default     = "seed"

  validation {
    condition     = contains(["seed", "documented"], var.api_profile)
    error_message = "api_profile must be seed or documented."
  }
}

variable "api_auth_scheme" {
  type        = string
  description = "How the API key is sent (SOURCES__ANALYTICS__AUTH_SCHEME): bearer (Authorization: Bearer <key>) or basic (Authorization: Basic <key>, the key as-is)."
  default     = "bearer"

  validation {
    condition     = contains(["bearer", "basic"], var.api_auth_scheme)
    error_message = "api_auth_scheme must be bearer or basic."
  }
}

variable "api_key" {
  type        = string
  description = "Opt-in: the API key, written to Secret Manager through a write-only attribute (never stored in state or plan). Used only when api_key_version is set. Default: add the value with gcloud (see the secret_add_version_command output)."
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "api_key_version" {
  type        = number
  description = "Opt-in: set (1, 2, ...) together with api_key to have Terraform add the secret version; increase it to write a new key. Null: Terraform writes no secret value."
  default     = null

  validation {
    condition     = var.api_key_version == null || try(var.api_key_version >= 1 && floor(var.api_key_version) == var.api_key_version, false)
    error_message = "api_key_version must be a whole number >= 1 (or null)."
  }

  # Without a key Terraform would write an empty secret version (or fail at apply).
  validation {
    condition     = var.api_key_version == null || var.api_key != null
    error_message = "api_key_version is set but api_key is not: pass the key too (export TF_VAR_api_key=...), or leave api_key_version unset and add the key with gcloud (output secret_add_version_command)."
  }
}

variable "schedule" {
  type        = string
  description = "When Cloud Scheduler runs the loader: a 5-field cron expression (minute hour day-of-month month day-of-week)."
  default     = "0 * * * *"

  validation {
    condition     = can(regex("^\\S+(\\s+\\S+){4}$", trimspace(var.schedule)))
    error_message = "schedule must be a cron expression with exactly 5 fields, e.g. \"0 * * * *\" (hourly)."
  }
}

variable "time_zone" {
  type        = string
  description = "Time zone of the schedule, from the tz database (e.g. Etc/UTC, Europe/Paris)."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", var.time_zone))
    error_message = "time_zone must be a tz database name such as Etc/UTC or Europe/Paris."
  }
}

variable "function_memory" {
  type        = string
  description = "Memory of the function instance (its vCPU is set to 1 in function.tf). The default is sized by `make bench` (docs/benchmarks.md) at the supported 1,000,000 sessions a run: the run's peak RSS into the BigQuery emulator, gzip load files as deployed (~275 MiB) + dlt's working folder in the in-memory /tmp (~64 MiB) + the gunicorn master (~37 MiB) = ~376 MiB, plus a 50% margin = ~564 MiB: over 512Mi, hence 1Gi."
  default     = "1Gi"

  validation {
    condition     = contains(["512Mi", "1Gi", "2Gi", "4Gi", "8Gi", "16Gi", "32Gi"], var.function_memory)
    error_message = "function_memory must be one of 512Mi, 1Gi, 2Gi, 4Gi, 8Gi, 16Gi, 32Gi."
  }
}

variable "function_timeout_seconds" {
  type        = number
  description = "Timeout of one run, in seconds; also the scheduler's attempt deadline, hence at most 1800 (Cloud Scheduler's 30-minute limit). The run stops reading a sixth of it (60-300 s) earlier (RUN_DEADLINE_SECONDS), to load what it read."
  default     = 1800

  validation {
    condition     = var.function_timeout_seconds >= 120 && var.function_timeout_seconds <= 1800 && floor(var.function_timeout_seconds) == var.function_timeout_seconds
    error_message = "function_timeout_seconds must be a whole number of seconds between 120 and 1800 (Cloud Scheduler's attempt deadline is at most 30 minutes; at least 60 s are kept after the run deadline to load what was read)."
  }
}

variable "ingress_settings" {
  type        = string
  description = "Who can reach the function over the network. ALLOW_INTERNAL_ONLY (default) admits Cloud Scheduler in the same project; ALLOW_ALL lets you curl it from outside. IAM (run.invoker) still guards every call."
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], var.ingress_settings)
    error_message = "ingress_settings must be ALLOW_INTERNAL_ONLY, ALLOW_INTERNAL_AND_GCLB or ALLOW_ALL."
  }
}

variable "scheduler_retry_count" {
  type        = number
  description = "How many times Cloud Scheduler retries a failed run (0-3). A retry replays the pending load package the failed run left."
  default     = 1

  validation {
    condition     = var.scheduler_retry_count >= 0 && var.scheduler_retry_count <= 3 && floor(var.scheduler_retry_count) == var.scheduler_retry_count
    error_message = "scheduler_retry_count must be a whole number between 0 and 3."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every resource that takes labels (keys and values: lower-case letters, digits, _ and -)."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels keys must start with a lower-case letter; keys and values may use lower-case letters, digits, _ and - (at most 63 characters)."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the API key's secret (all its versions) and the loader's dataset. Set false and apply before a `terraform destroy` that should remove them."
  default     = true
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses notified by the alert policies (one email notification channel each). Empty: the policies still exist and open incidents in the console, but notify no one."
  default     = []

  validation {
    condition     = alltrue([for email in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", email))])
    error_message = "alert_emails must be email addresses such as ops@example.com."
  }
}

variable "success_alert_window_seconds" {
  type        = number
  description = "Alert when no run has succeeded for this long, in seconds. Null: twice the schedule's period, read off the cron expression for every-N-minutes, hourly, every-N-hours and daily schedules, capped at 88200 (24.5 h, Cloud Monitoring's longest absence window); other schedules must set it. Must be longer than the schedule's period (the longest gap between two runs), a multiple of 60, at most 88200."
  default     = null

  validation {
    condition     = var.success_alert_window_seconds == null || try(var.success_alert_window_seconds % 60 == 0 && var.success_alert_window_seconds >= 120 && var.success_alert_window_seconds <= 88200, false)
    error_message = "success_alert_window_seconds must be a whole number of minutes in seconds (a multiple of 60), between 120 and 88200 (24.5 h)."
  }

  validation {
    condition     = var.success_alert_window_seconds != null || local.schedule_period_seconds != null
    error_message = "The schedule's period cannot be read off its cron expression (only every N minutes, hourly, every N hours and daily can): set success_alert_window_seconds to more than the longest gap between two runs."
  }

  validation {
    condition     = var.success_alert_window_seconds == null || local.schedule_period_seconds == null || try(var.success_alert_window_seconds > local.schedule_period_seconds, true)
    error_message = "success_alert_window_seconds must be longer than the schedule's period, or the alert fires between two healthy runs."
  }
}
