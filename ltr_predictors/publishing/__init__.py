"""Publishing predictors: model cards (`cards`), folder scans before upload (`folder_scan`), and the checked,
atomic Hub upload from a manifest (`upload`)."""
