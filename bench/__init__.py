"""`make bench`: this project's sync against the original design, awswrangler and the LOAD DATA floor."""
