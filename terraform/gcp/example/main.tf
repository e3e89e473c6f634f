# An example root: testexec in one project, with deploy.sh's defaults.
# See README.md in this directory.

module "testexec" {
  source = "../module"

  project       = var.project
  region        = var.region
  image         = var.image
  worker_image  = var.worker_image
  workers       = var.workers
  github_app_id = var.github_app_id
  schedule      = var.schedule
  schedule_repo = var.schedule_repo
}
