"""Publishing predictors: model cards (`cards`), folder scans before upload (`folder_scan`), the upload manifest
(`manifest`), the checked plan of one commit (`plan`), and sending it to the Hub and reading it back (`upload`)."""
