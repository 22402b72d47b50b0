"""govnode reports: time and paper saved, work followed up (see README.md)."""
