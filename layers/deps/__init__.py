"""The pure-Python dependencies layer (Powertools, PyMySQL, X-Ray SDK) and the RDS CA bundle."""
