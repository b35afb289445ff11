"""PostgreSQL implementations behind the write side and the workers: SQL lives here and in
projections/, nowhere else."""
