"""The S3-triggered batch scoring function: CSVs under incoming/ scored into S3."""
