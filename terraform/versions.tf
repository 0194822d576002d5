terraform {
  # 1.11: write-only arguments (secret_data_wo) and ephemeral input variables.
  required_version = ">= 1.11, < 2.0"

  required_providers {
    # Each range's two ends are checked against the provider's schema by `make test`
    # (tools/tfschema/wheels.txt lists the schema packages).
    google = {
      source = "hashicorp/google"
      # 7.33: deletion_policy on the dataset (secret_data_wo since 6.23, the secret's
      # deletion_protection since 6.43); 8.x turns secret_data_wo_version into a string.
      version = ">= 7.33, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4.1, < 3.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.10, < 1.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
