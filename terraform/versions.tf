terraform {
  # 1.11: write-only arguments (secret_data_wo) and ephemeral input variables.
  required_version = ">= 1.11, < 2.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.23 added secret_data_wo; 8.x turns secret_data_wo_version into a string.
      version = ">= 6.23, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
